"""Group-level lesion phenotypes read participant maps; a damaged one is named, not a gzip traceback."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.workflows.group_lesions import _image_data


def test_damaged_participant_map_is_an_input_error(tmp_path):
    path = tmp_path / "sub-01_space-T1w_model-SRTM2_meas-DVR_mimap.nii.gz"
    data = np.random.default_rng(0).random((30, 30, 30)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    np.testing.assert_array_equal(_image_data(path, np.float32), data)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError) as caught:
        _image_data(path, np.float32)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot be read (EOFError") and "re-run the participant level" in message
    assert "\n" not in message
