"""How much of the GTM reference-TAC error comes from the tissue fractions (data/test_bids or a phantom like it).

For every session of a ``--pvc gtm|rbv`` participant run, runs the pipeline's partial-volume correction node
again twice, on the node's own inputs:

- ``pipeline``: the segmentation's tissue fractions (what the run did);
- ``truth``: the phantom's true CSF/GM/WM fractions on the T1w grid (derivatives/phantom-truth),

and prints the GTM cerebellar-GM (reference) TAC error against the phantom's tissue TAC in the frames starting at
or after 2 min: largest |error|, mean and range; for a ``--ref-region svca`` run also that of the corrected SVCA
reference (column ``svca``), against the same tissue TAC. The difference between the two rows is what the fractions cost;
what remains with the true fractions is registration, motion, noise and the compartment model.

Usage::

    tspo-bids data/test_bids OUT participant -w WORK --pvc gtm --pvc-psf 5 [--ref-region svca]
    python benchmarks/gtm_reference_fractions.py WORK [BIDS_DIR (default data/test_bids)]
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from nipype.utils.filemanip import loadpkl

from tspo_bids.interfaces.pvc import PartialVolumeCorrect

REPO = Path(__file__).resolve().parents[1]
TAC_FROM_S = 120.0  # the issue-4 acceptance compares frames after 2 min
#: Participant workflow folder: sub_<label>[_ses_<label>]_trc_..._wf
WORKFLOW_NAME = re.compile(r"^sub_(?P<subject>[A-Za-z0-9]+)(?:_ses_(?P<session>[A-Za-z0-9]+))?_")


def _one(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"{root}: expected one {pattern}, found {len(found)}")
    return found[0]


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    work = Path(sys.argv[1])
    bids = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "data" / "test_bids"
    nodes = sorted((work / "tspo_bids_wf").glob("sub_*_wf/pvc_wf/partial_volume_correct"))
    if not nodes:
        raise SystemExit(f"{work}: no partial-volume correction node (run the participant level with --pvc)")
    print(f"GTM reference TAC vs the tissue TAC, frames from {TAC_FROM_S / 60:g} min: max |error|, mean, range")
    with tempfile.TemporaryDirectory(prefix="gtm_fractions_") as scratch:
        for node in nodes:
            inputs = {k: v for k, v in loadpkl(node / "_inputs.pklz").items() if v is not None}
            match = WORKFLOW_NAME.match(node.parents[1].name)
            if match is None:
                raise SystemExit(f"{node.parents[1]}: not a participant workflow folder")
            subject, session = match["subject"], match["session"]
            truth_dir = bids / "derivatives" / "phantom-truth" / f"sub-{subject}"
            truth_dir = (truth_dir / f"ses-{session}" if session else truth_dir) / "anat"
            truth = pd.read_csv(_one(truth_dir, "*_desc-tissue_tacs.tsv"), sep="\t")
            late = truth["frame_start"].to_numpy(float) >= TAC_FROM_S
            variants = {
                "pipeline": {},
                "truth": {f"{t}_prob": str(_one(truth_dir, f"*_space-T1w_label-{t.upper()}_probseg.nii.gz"))
                          for t in ("gm", "wm", "csf")},
            }
            for name, fractions in variants.items():
                cwd = Path(scratch) / f"{subject}_{session}_{name}"
                cwd.mkdir()
                result = PartialVolumeCorrect(**{**inputs, **fractions}).run(cwd=str(cwd))
                tacs = pd.read_csv(result.outputs.tacs_file, sep="\t")
                label = f"sub-{subject}" + (f"_ses-{session}" if session else "")
                for column in ("cerebellumgm", "svca"):
                    if column not in tacs:
                        continue
                    error = tacs[column].to_numpy(float)[late] / truth["cerebellumgm"].to_numpy(float)[late] - 1
                    print(f"{label:24s} {name:9s} {column:12s} {np.abs(error).max():6.3f} {error.mean():+7.3f} "
                          f"[{error.min():+.3f}, {error.max():+.3f}]", flush=True)


if __name__ == "__main__":
    main()
