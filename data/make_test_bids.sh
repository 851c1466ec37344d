#!/bin/sh
# Regenerate data/test_bids, the committed digital phantom (tspo-bids-simulate; truth under
# data/test_bids/derivatives/phantom-truth). Regenerate rarely: every version stays in git history.
# 5 participants (sub-01 HC, sub-02 RRMS with ses-baseline + ses-followup, sub-03 HC, sub-04 SPMS,
# sub-05 HC: three controls for the SVCA classes and the active-voxel threshold), [11C]-(R)-PK11195,
# T1w 1.4-1.5 mm, PET 3-4 mm (2.5 mm PET is left out to stay under 40 MB). Patients have three lesions
# >= 500 mm^3 (one rim-active, one overall-active, one inactive) and 5-6 small ones of mixed phenotypes,
# a perilesional gradient and raised NAWM/thalamic binding.
# About 39 MB; takes about 75 s on 2 cores.
set -eu
cd "$(dirname "$0")"
rm -rf test_bids
tspo-bids-simulate test_bids --n-subjects 5 --groups HC RRMS HC SPMS HC --tracer pk11195 --seed 20261124 \
    --t1w-voxel 1.5 1.4 --pet-voxel 4.0 3.5 3.0 --verbose
