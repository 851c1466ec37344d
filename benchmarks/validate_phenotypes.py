"""Validation: lesion phenotype accuracy on the phantom, by lesion size.

Reads a tspo-bids output (participant + group run on a phantom dataset) and the phantom's truth,
matches every true lesion to the detected lesion it overlaps most, and prints the fraction of
lesions whose phenotype (rim-active / overall-active / inactive) was recovered, by size bin.
With ``--pvc rbv`` participant outputs the group level classifies on the corrected maps.
Run: python benchmarks/validate_phenotypes.py OUTPUT_DIR [BIDS_DIR (default data/test_bids)]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from e2e_support import TEST_BIDS, phenotype_agreement  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    bids = Path(sys.argv[2]) if len(sys.argv) > 2 else TEST_BIDS
    table = phenotype_agreement(out, bids)
    print(table.round(3).to_string(index=False))
    print("\naccuracy by size (mm^3) and true phenotype")
    print(table.groupby(["size", "truth"], observed=True)["correct"].agg(["mean", "count"]).round(2).to_string())
    print("\naccuracy by size")
    print(table.groupby("size", observed=True)["correct"].agg(["mean", "count"]).round(2).to_string())


if __name__ == "__main__":
    main()
