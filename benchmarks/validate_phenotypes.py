"""Validation: lesion phenotype accuracy on the phantom, by lesion size.

Reads a tspo-bids output (participant + group run on a phantom dataset) and the phantom's truth,
matches every true lesion to the detected lesion it overlaps most, and prints the fraction of
lesions whose phenotype (rim-active / overall-active / inactive) was recovered, by size bin.
Run: python benchmarks/validate_phenotypes.py OUTPUT_DIR [BIDS_DIR (default data/test_bids)]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BINS_MM3 = (27, 100, 500, np.inf)


def main() -> None:
    out = Path(sys.argv[1])
    bids = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "data" / "test_bids"
    predicted = pd.read_csv(out / "group" / "lesion_phenotypes.tsv", sep="\t", na_values="n/a")
    rows = []
    for truth_table in sorted((bids / "derivatives" / "phantom-truth").glob("sub-*/**/*_desc-truth_lesions.tsv")):
        parts = truth_table.name.split("_")
        subject = parts[0]
        session = parts[1][4:] if parts[1].startswith("ses-") else None
        prefix = "_".join(p for p in parts if p.startswith(("sub-", "ses-")))
        truth = pd.read_csv(truth_table, sep="\t", na_values="n/a")
        truth_labels = np.asarray(nib.load(next(truth_table.parent.glob(f"{prefix}_*desc-lesions_dseg.nii.gz"))).dataobj)
        found_labels = np.asarray(nib.load(next(out.glob(f"sub-*/**/anat/{prefix}_desc-lesions_dseg.nii.gz"))).dataobj)
        own = predicted[(predicted.participant_id == subject)
                        & (predicted.session_id.astype(str) == str(session))].set_index("lesion_id")
        for _, lesion in truth.iterrows():
            overlap = found_labels[truth_labels == int(lesion["index"])]
            overlap = overlap[overlap > 0]
            label = int(np.bincount(overlap).argmax()) if overlap.size else 0
            phenotype = own.loc[label, "phenotype"] if label in own.index else "not detected"
            rows.append({"session": prefix, "volume_mm3": lesion["volume_mm3"], "truth": lesion["phenotype"],
                         "predicted": phenotype, "rim_dvr_true": lesion["rim_DVR_tissue"],
                         "rim_dvr_measured": own.loc[label, "rim_mean_dvr"] if label in own.index else np.nan,
                         "threshold": own.loc[label, "active_threshold"] if label in own.index else np.nan})
    table = pd.DataFrame(rows)
    table["correct"] = table["truth"] == table["predicted"]
    table["size"] = pd.cut(table["volume_mm3"], BINS_MM3, right=False)
    print(table.round(3).to_string(index=False))
    print("\naccuracy by size (mm^3) and true phenotype")
    print(table.groupby(["size", "truth"], observed=True)["correct"].agg(["mean", "count"]).round(2).to_string())
    print("\naccuracy by size")
    print(table.groupby("size", observed=True)["correct"].agg(["mean", "count"]).round(2).to_string())


if __name__ == "__main__":
    main()
