"""Lesion phenotypes at 5 mm PSF on the simulated cohort of tests/pvc (8 controls, 6 patients x 7 lesions).

Prints, per lesion, the simulated phenotype and the class from the true image, the uncorrected and the
RBV-corrected PET, then agreement by size bin, for the phantom as it is (perilesional increase outside the
2 mm rims) and, with ``--gradient-in-rims``, for the variant with the increase inside the rims of inactive and
overall-active lesions (a rim that is not uniform within its GTM compartment; its labels can disagree with
the definition on the true image, so the corrected classes are compared with the true image there).

Usage: python benchmarks/phenotype_cohort.py [--gradient-in-rims]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pvc"))
import test_lesion_phenotype_cohort as cohort_test  # noqa: E402  (the test's cohort and classification)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gradient-in-rims", action="store_true")
    args = parser.parse_args()
    table = cohort_test.classified_cohort(gradient_in_rims=args.gradient_in_rims)
    print(table.to_string(index=False))
    for reference in ("simulated", "true_image"):
        for column in ("uncorrected", "corrected"):
            agreement = cohort_test._agreement(table, column, reference)
            counts = (table[column] == table[reference]).groupby(table["size"], observed=True).agg(["sum", "count"])
            print(f"\n{column} vs {reference}, by size (mm^3):")
            print("\n".join(f"  {size}: {int(row['sum'])}/{int(row['count'])} ({agreement[size]:.2f})"
                            for size, row in counts.iterrows()))


if __name__ == "__main__":
    main()
