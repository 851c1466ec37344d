"""Validation: GTM partial-volume correction on data/test_bids with the true PSF and +-1 mm.

Runs the participant level once (uncorrected, shared work directory), then with
--pvc gtm --pvc-psf {FWHM-1, FWHM, FWHM+1} and prints, per participant and region, the BPND
error against the phantom's tissue truth (the README's validation table).
Run: python benchmarks/validate_pvc_psf.py [WORK_ROOT]   (~5 min on 2 cores)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TEST_BIDS = REPO / "data" / "test_bids"
TRUTH = TEST_BIDS / "derivatives" / "phantom-truth"
REGIONS = ("cortexgm", "wm", "nawm", "thalamus", "deepgm")


def run(out: Path, work: Path, *options: str) -> None:
    command = [sys.executable, "-m", "tspo_bids.cli.run", str(TEST_BIDS), str(out), "participant",
               "-w", str(work), "--nprocs", "2", "--skip-bids-validation", *options]
    subprocess.run(command, check=True)


def errors(out: Path, pvc: bool) -> pd.DataFrame:
    rows = []
    for truth_file in sorted(TRUTH.glob("sub-*/**/*_desc-truth_kinpar.tsv")):
        parts = truth_file.name.split("_")
        prefix = "_".join(p for p in parts if p.startswith(("sub-", "ses-")))
        truth = pd.read_csv(truth_file, sep="\t", na_values="n/a").set_index("region")
        pattern = f"sub-*/**/pet/{prefix}_*{'pvc-GTM_' if pvc else ''}model-SRTM_kinpar.tsv"
        found = [p for p in out.glob(pattern) if pvc or "pvc-" not in p.name]
        fitted = pd.read_csv(found[0], sep="\t", na_values="n/a").set_index("region")
        for region in REGIONS:
            if region in truth.index and region in fitted.index and pd.notna(truth.loc[region, "BPND_tissue"]):
                rows.append({"session": prefix, "region": region,
                             "error": fitted.loc[region, "BPND"] - truth.loc[region, "BPND_tissue"]})
    return pd.DataFrame(rows)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="pvc-psf-"))
    work = root / "work"
    fwhm = json.loads(next(TRUTH.glob("sub-*/**/*_desc-truth_kinpar.json")).read_text())["PSF_FWHM_mm"]
    run(root / "out_none", work)
    table = errors(root / "out_none", pvc=False).rename(columns={"error": "uncorrected"})
    for psf in (fwhm - 1, fwhm, fwhm + 1):
        out = root / f"out_psf{psf:g}"
        run(out, work, "--pvc", "gtm", "--pvc-psf", f"{psf:g}")
        table[f"GTM {psf:g} mm"] = errors(out, pvc=True)["error"].to_numpy()
    print(f"BPND error against tissue truth (phantom PSF {fwhm:g} mm FWHM)")
    print(table.round(3).to_string(index=False))
    print("\nmean |error| by region")
    print(table.drop(columns="session").groupby("region").agg(lambda s: s.abs().mean()).round(3).to_string())


if __name__ == "__main__":
    main()
