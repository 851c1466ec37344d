"""Partial-volume options: missing or inconsistent --pvc/--pvc-psf end in one line, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from bids_factory import make_bids

from tspo_bids.cli.parser import parse_args
from tspo_bids.cli.run import build_settings, main


@pytest.fixture()
def dataset(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_bids(tmp_path / "bids", subjects=["01"], sessions=["baseline"])


@pytest.mark.parametrize("options, message", [
    (["--pvc", "gtm"], "--pvc gtm: needs the scanner's point-spread function"),
    (["--pvc-psf", "5"], "--pvc-psf 5: given without --pvc"),
    (["--pvc", "rbv", "--pvc-psf", "0"], "--pvc-psf: FWHM must be > 0 and <= 20 mm"),
    (["--pvc", "gtm", "--pvc-psf", "-3"], "--pvc-psf: FWHM must be > 0 and <= 20 mm"),
    (["--pvc", "gtm", "--pvc-psf", "20.5"], "--pvc-psf: FWHM must be > 0 and <= 20 mm"),
    (["--pvc", "gtm", "--pvc-psf", "5", "6"], "--pvc-psf: give one FWHM or three"),
    (["--pvc", "gtm", "--pvc-psf", "five"], "--pvc-psf"),
])
def test_bad_pvc_options(dataset, tmp_path, capsys, options, message):
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", *options])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("tspo-bids: error: ") and message in lines[0]
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("psf, expected", [(["5"], (5.0, 5.0, 5.0)), (["4", "4.5", "6"], (4.0, 4.5, 6.0))])
def test_good_pvc_options(dataset, tmp_path, psf, expected):
    settings = build_settings(parse_args([str(dataset), str(tmp_path / "out"), "participant",
                                          "--pvc", "gtm", "--pvc-psf", *psf]))
    assert settings.pvc == "gtm" and settings.pvc_psf_mm == expected
    assert build_settings(parse_args([str(dataset), str(tmp_path / "o2"), "participant"])).pvc_psf_mm is None
