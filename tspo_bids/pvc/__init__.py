"""Partial-volume correction (pure numerics on arrays): PSF, GTM (Rousset 1998), RBV and iterative Yang.

:mod:`tspo_bids.pvc.forward` adds the PET voxelisation (PSF -> PET grid -> trilinear back to T1w) to the model.
"""

from tspo_bids.pvc.gtm import (
    GTMResult,
    gtm_condition_number,
    gtm_correct,
    gtm_matrix,
    gtm_regional,
    partition_regions,
    regional_means,
    roi_partition_weights,
)
from tspo_bids.pvc.forward import PetGridModel, gtm_matrix_pet_grid
from tspo_bids.pvc.psf import fwhm_to_sigma_vox, gaussian_psf_blur, validate_psf
from tspo_bids.pvc.rbv import iterative_yang, rbv_correct, synthetic_image

__all__ = [
    "validate_psf",
    "fwhm_to_sigma_vox",
    "gaussian_psf_blur",
    "partition_regions",
    "regional_means",
    "roi_partition_weights",
    "gtm_matrix",
    "gtm_condition_number",
    "gtm_correct",
    "GTMResult",
    "gtm_regional",
    "synthetic_image",
    "PetGridModel",
    "gtm_matrix_pet_grid",
    "rbv_correct",
    "iterative_yang",
]
