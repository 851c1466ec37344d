"""White-matter lesions: automatic FLAIR segmentation, connected components, T1w lesion filling.

Pure array numerics (methods.md section 4): images are NumPy arrays on one grid, voxel sizes are
passed explicitly in mm, volumes are mm^3. No file I/O.

The segmentation is an unsupervised intensity-outlier model ("a lesion is a FLAIR outlier of
normal-appearing white matter"; cf. the lesion growth algorithm of Schmidt et al. 2012 NeuroImage),
kept deliberately simple and transparent:

1. Remove a smooth residual intensity bias from FLAIR and T1w by a normalised Gaussian convolution over
   confident white matter (outliers excluded), so normal-appearing white matter (NAWM) is ~1.
2. Robust z-scores (median, 1.4826 x MAD) of a lightly smoothed FLAIR against NAWM and against the
   purest grey matter. Grey matter is located without trusting the calibration of the tissue
   fractions: partial volume with WM (brighter in T1w) and with CSF (darker in T1w) both darken grey
   matter in FLAIR, so among grey-matter-dominant voxels ordered by T1w the FLAIR median peaks where
   grey matter is purest (the GM vertex of the T1w-FLAIR mixing triangle). Cortex and deep GM are
   located separately and the brighter bounds normal grey matter.
3. Strong voxels (not bright in T1w): hyperintense against NAWM *and* grey matter, or, deep inside white
   matter (most of a Gaussian neighbourhood is WM; deep GM excluded), far above NAWM. Strong clusters
   count only when they reach into the search region: white matter and deep grey matter dilated by a
   margin. A cluster may extend beyond the margin, so lesion centres that a segmentation of the
   unfilled T1w called GM or CSF are not lost.
4. Boundary: voxels within a few mm of a cluster join it when brighter than half-way between NAWM and
   the cluster's own level (a high percentile of its voxels): the half-maximum edge, where the
   partial-volume lesion fraction is ~0.5.
5. Connected components (26-connectivity) and a minimum volume (default 27 mm^3).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from tspo_bids.errors import InputError

__all__ = [
    "DEFAULT_MIN_LESION_VOLUME_MM3",
    "check_voxel_size",
    "label_lesions",
    "segment_lesions",
    "fill_lesions",
    "robust_location_scale",
]

#: Default minimum lesion volume, mm^3 (methods.md section 4).
DEFAULT_MIN_LESION_VOLUME_MM3 = 27.0

#: Robust standard deviation from the median absolute deviation of a normal distribution.
_MAD_TO_SD = 1.4826

#: 26-connectivity structuring element.
_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def check_voxel_size(voxel_size_mm: ArrayLike | float, ndim: int = 3) -> NDArray[np.float64]:
    """Validate voxel sizes and return them as an ``(ndim,)`` float array in mm.

    Parameters
    ----------
    voxel_size_mm
        One positive size per axis, mm (a scalar means isotropic voxels).
    ndim
        Number of image axes.

    Raises
    ------
    InputError
        When the sizes are not finite and positive or do not match ``ndim``.
    """
    sizes = np.asarray(voxel_size_mm, dtype=float)
    if sizes.ndim == 0:
        sizes = np.full(ndim, float(sizes))
    if sizes.shape != (ndim,) or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise InputError(f"voxel size must be {ndim} positive numbers of mm, got {np.asarray(voxel_size_mm)!r}")
    return sizes


def _same_shape(reference: NDArray, named: dict[str, NDArray | None]) -> None:
    for name, array in named.items():
        if array is not None and array.shape != reference.shape:
            raise InputError(f"{name} has shape {array.shape} but the FLAIR image has {reference.shape}; resample it first")


def robust_location_scale(values: ArrayLike) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 x median absolute deviation) of ``values``.

    Raises
    ------
    InputError
        When ``values`` holds no finite number.
    """
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise InputError("robust statistics: no finite value to summarise")
    centre = float(np.median(data))
    scale = _MAD_TO_SD * float(np.median(np.abs(data - centre)))
    if scale <= 0:  # more than half the values identical: fall back on the ordinary SD
        scale = float(np.std(data))
    return centre, scale


def label_lesions(
    mask: ArrayLike, voxel_size_mm: ArrayLike | float, min_volume_mm3: float = DEFAULT_MIN_LESION_VOLUME_MM3
) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    """Connected lesions of a binary mask (26-connectivity), smaller ones removed.

    Parameters
    ----------
    mask
        Lesion mask, any array interpreted as boolean (non-zero = lesion), shape (X, Y, Z).
    voxel_size_mm
        Voxel size along each axis, mm.
    min_volume_mm3
        Lesions with a volume (voxel count x voxel volume) below this are dropped, mm^3.

    Returns
    -------
    labels : ndarray of int32, shape (X, Y, Z)
        0 = background, lesions numbered 1..n in raster order of their first voxel.
    volumes_mm3 : ndarray, shape (n,)
        Volume of lesion ``i + 1``, mm^3.
    """
    binary = np.asarray(mask) != 0
    sizes = check_voxel_size(voxel_size_mm, binary.ndim)
    if not np.isfinite(min_volume_mm3) or min_volume_mm3 < 0:
        raise InputError(f"minimum lesion volume must be a non-negative number of mm^3, got {min_volume_mm3!r}")
    structure = np.ones((3,) * binary.ndim, dtype=bool)
    components, n_components = ndimage.label(binary, structure=structure)
    if n_components == 0:
        return components.astype(np.int32), np.zeros(0)
    voxel_volume = float(np.prod(sizes))
    counts = np.bincount(components.ravel(), minlength=n_components + 1)[1:]
    volumes = counts * voxel_volume
    # tolerance so that e.g. 27 voxels of 1 mm^3 are not lost to rounding of the voxel size
    keep = volumes >= min_volume_mm3 * (1.0 - 1e-9)
    new_label = np.zeros(n_components + 1, dtype=np.int32)
    new_label[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_label[components], volumes[keep].astype(float)


def _smooth_field(
    image: NDArray[np.float64], support: NDArray[np.bool_], sigma_vox: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Normalised Gaussian convolution of ``image`` over ``support`` (smooth estimate everywhere)."""
    weight = ndimage.gaussian_filter(support.astype(float), sigma_vox, mode="nearest")
    total = ndimage.gaussian_filter(np.where(support, image, 0.0), sigma_vox, mode="nearest")
    floor = 1e-3 * max(float(weight.max()), 1e-12)
    field = total / np.maximum(weight, floor)
    # far from any support the estimate is unreliable: use the support's median there
    median = float(np.median(image[support]))
    return np.where(weight > floor, field, median)


def _normalise_to_white_matter(
    image: NDArray[np.float64],
    wm_core: NDArray[np.bool_],
    sigma_vox: NDArray[np.float64],
    outlier_z: float,
) -> NDArray[np.float64]:
    """Divide ``image`` by a smooth white-matter intensity field (NAWM -> ~1), ignoring outliers.

    Two passes: the first excludes global outliers (lesions) of the confident white matter, the second
    excludes local outliers relative to the first field.
    """
    centre, scale = robust_location_scale(image[wm_core])
    support = wm_core & (np.abs(image - centre) <= outlier_z * scale)
    if support.sum() < 10:
        support = wm_core
    for _ in range(2):
        field = _smooth_field(image, support, sigma_vox)
        field = np.where(field > 0, field, centre if centre > 0 else 1.0)
        ratio = image / field
        centre_r, scale_r = robust_location_scale(ratio[wm_core])
        new_support = wm_core & (np.abs(ratio - centre_r) <= outlier_z * scale_r)
        if new_support.sum() >= 10:
            support = new_support
    return image / field


def _grey_matter_reference(
    flair: NDArray[np.float64],
    t1w: NDArray[np.float64],
    grey: NDArray[np.bool_],
    n_bins: int,
    min_bin_voxels: int = 100,
) -> tuple[float, float] | None:
    """FLAIR location and robust scale of the purest grey matter, from the T1w-FLAIR mixing line.

    Partial volume with white matter (brighter in T1w) and with CSF (darker in T1w) both make grey
    matter darker in FLAIR, so among grey-matter-dominant voxels sorted by T1w intensity the FLAIR
    median peaks where grey matter is purest. The voxels are split into ``n_bins`` equal-count T1w
    bins; the bin with the highest FLAIR median gives the location (median) and scale (1.4826 x MAD).

    Unlike the voxels above a fixed grey-matter probability, this does not rely on the calibration of
    the tissue fractions: when a segmentation places its grey-matter class on GM/WM mixtures, the
    voxels it calls pure grey matter are darker and less spread in FLAIR than grey matter, and real
    grey matter then looks hyperintense against them.

    Returns
    -------
    (location, scale) or None
        ``None`` when ``grey`` holds fewer than ``2 * min_bin_voxels`` voxels.
    """
    values = flair[grey]
    order = t1w[grey]
    n_bins = int(min(n_bins, values.size // min_bin_voxels))
    if n_bins < 2:
        return None
    sorted_flair = values[np.argsort(order, kind="stable")]
    bins = np.array_split(sorted_flair, n_bins)
    medians = np.array([np.median(b) for b in bins])
    return robust_location_scale(bins[int(np.argmax(medians))])


def _search_region(
    wm_prob: NDArray[np.float64],
    deepgm_mask: NDArray[np.bool_] | None,
    brain: NDArray[np.bool_],
    sizes: NDArray[np.float64],
    wm_threshold: float,
    margin_mm: float,
) -> NDArray[np.bool_]:
    """White matter and deep GM, dilated by ``margin_mm`` (Euclidean), inside the brain."""
    core = (wm_prob >= wm_threshold) & brain
    if deepgm_mask is not None:
        core |= deepgm_mask & brain
    if margin_mm > 0 and core.any():
        distance = ndimage.distance_transform_edt(~core, sampling=sizes)
        core = distance <= margin_mm
    return core & brain


def segment_lesions(
    flair: ArrayLike,
    t1w: ArrayLike,
    wm_prob: ArrayLike,
    gm_prob: ArrayLike,
    brain_mask: ArrayLike,
    voxel_size_mm: ArrayLike | float,
    *,
    deepgm_mask: ArrayLike | None = None,
    z_threshold: float = 3.0,
    gm_z_threshold: float = 5.0,
    seed_smoothing_mm: float = 1.0,
    grow_max_mm: float = 3.0,
    wm_context_sigma_mm: float = 3.0,
    wm_context_min: float = 0.8,
    context_z_threshold: float = 5.0,
    level_percentile: float = 75.0,
    deepgm_margin_mm: float = 2.0,
    t1w_z_max: float = 2.0,
    grow_z: float = 2.0,
    boundary_fraction: float = 0.5,
    search_margin_mm: float = 3.0,
    bias_sigma_mm: float = 20.0,
    wm_core_threshold: float = 0.9,
    wm_threshold: float = 0.5,
    grey_threshold: float = 0.5,
    grey_bins: int = 20,
    min_volume_mm3: float = DEFAULT_MIN_LESION_VOLUME_MM3,
) -> NDArray[np.int32]:
    """Segment white-matter lesions as FLAIR-hyperintense outliers of normal-appearing white matter.

    Parameters
    ----------
    flair
        FLAIR image on the T1w grid (ideally bias-corrected; a smooth residual bias is removed here),
        arbitrary units, shape (X, Y, Z).
    t1w
        T1-weighted image on the same grid, arbitrary units.
    wm_prob, gm_prob
        White- and grey-matter probabilities in [0, 1] on the same grid (from a segmentation of the
        unfilled T1w: lesion centres may have low ``wm_prob``, hence the search margin).
    brain_mask
        Brain mask (non-zero = brain).
    voxel_size_mm
        Voxel size along each axis, mm.
    deepgm_mask
        Optional deep grey matter (and thalamus) mask; added to the white matter search region.
    z_threshold
        Strong voxels have a z-score of the smoothed FLAIR against NAWM of at least this (default 3) ...
    gm_z_threshold
        ... and against the purest grey matter of at least this (default 5; a voxelwise bound over
        the ~1e5 grey matter voxels), so cortex, deep GM and partial volume are not taken for lesion.
        Grey matter location: the FLAIR median of the T1w bin of grey-matter-dominant voxels with the
        highest FLAIR median (see ``grey_bins``), for cortex (``gm_prob >= grey_threshold``, deep GM
        excluded) and for ``deepgm_mask``, the brighter of the two; scale: that bin's robust SD, at
        least the NAWM one (noise). Voxels above a fixed ``gm_prob`` are not used: when the fractions
        are miscalibrated (e.g. a grey matter class fitted on GM/WM mixtures) they are partial-volume
        voxels, darker and less spread in FLAIR than grey matter, and grey matter then passes for lesion.
    seed_smoothing_mm
        Gaussian sigma of the smoothing used for strong voxels, mm (default 1; 0 = none).
    context_z_threshold
        Alternatively, strong voxels deep in white matter need a z-score against NAWM of at least this
        (default 5) and nothing against cortex (small or faint lesions are no brighter than cortex).
    wm_context_sigma_mm, wm_context_min
        "Deep in white matter": the Gaussian average (sigma default 3 mm) of ``wm_prob`` is at least
        ``wm_context_min`` (default 0.8) and the voxel is more than ``deepgm_margin_mm`` from deep GM.
    deepgm_margin_mm
        Distance from ``deepgm_mask`` within which only the cortex criterion applies, mm (default 2).
        Without ``deepgm_mask``, deep GM nuclei may be taken for lesions: pass it.
    t1w_z_max
        Lesion voxels have a T1w robust z-score against NAWM of at most this (default 2): lesions are
        iso- or hypointense in T1w; voxels bright in both images are something else.
    grow_z
        Lesion voxels have an (unsmoothed) FLAIR z-score against NAWM of at least this (default 2).
    grow_max_mm
        Lesion voxels lie within this distance of a strong cluster, mm (default 3).
    level_percentile
        A cluster's level ``m`` is this percentile of its normalised FLAIR values (default 75).
    boundary_fraction
        Lesion voxels are brighter than ``1 + boundary_fraction * (m - 1)`` (NAWM is 1); default 0.5,
        the half-maximum boundary.
    search_margin_mm
        Dilation of the white matter (``wm_prob >= wm_threshold``) and deep GM search region, mm
        (default 3).
    bias_sigma_mm
        Gaussian sigma of the smooth intensity field removed from FLAIR and T1w, mm (default 20).
    wm_core_threshold
        ``wm_prob`` of the confident white matter that defines the NAWM distribution (default 0.9).
    wm_threshold
        ``wm_prob`` of the white matter search region (default 0.5).
    grey_threshold
        ``gm_prob`` of the grey-matter-dominant voxels searched for the purest grey matter (default 0.5).
    grey_bins
        Number of equal-count T1w bins of those voxels (default 20; fewer when a bin would hold
        fewer than 100 voxels).
    min_volume_mm3
        Minimum lesion volume, mm^3 (default 27).

    Returns
    -------
    ndarray of int32, shape (X, Y, Z)
        Lesion labels, 0 = background, 1..n one per connected lesion (see :func:`label_lesions`).

    Raises
    ------
    InputError
        Mismatched shapes, bad voxel sizes, or too little white matter to model NAWM.
    """
    flair_image = np.asarray(flair, dtype=float)
    if flair_image.ndim != 3:
        raise InputError(f"FLAIR image must be 3-D, got shape {flair_image.shape}")
    t1w_image = np.asarray(t1w, dtype=float)
    wm = np.asarray(wm_prob, dtype=float)
    gm = np.asarray(gm_prob, dtype=float)
    brain = np.asarray(brain_mask) != 0
    deepgm = None if deepgm_mask is None else np.asarray(deepgm_mask) != 0
    _same_shape(flair_image, {"T1w image": t1w_image, "WM probability": wm, "GM probability": gm,
                              "brain mask": brain, "deep GM mask": deepgm})
    sizes = check_voxel_size(voxel_size_mm)
    if not 0 < boundary_fraction < 1:
        raise InputError(f"boundary_fraction must lie in (0, 1), got {boundary_fraction!r}")

    finite = np.isfinite(flair_image) & np.isfinite(t1w_image)
    brain &= finite
    wm_core = brain & (wm >= wm_core_threshold)
    if wm_core.sum() < 100:
        raise InputError(
            f"lesion segmentation: only {int(wm_core.sum())} voxels with WM probability >= {wm_core_threshold} "
            "in the brain mask; check the tissue segmentation and its grid"
        )
    flair_image = np.where(finite, flair_image, 0.0)
    t1w_image = np.where(finite, t1w_image, 0.0)
    sigma_vox = bias_sigma_mm / sizes
    flair_n = _normalise_to_white_matter(flair_image, wm_core, sigma_vox, outlier_z=z_threshold)
    t1w_n = _normalise_to_white_matter(t1w_image, wm_core, sigma_vox, outlier_z=z_threshold)

    wm_centre, wm_scale = robust_location_scale(flair_n[wm_core])
    t1_centre, t1_scale = robust_location_scale(t1w_n[wm_core])
    scale = max(wm_scale, 1e-12)

    search = _search_region(wm, deepgm, brain, sizes, wm_threshold, search_margin_mm)
    not_t1_bright = brain & (t1w_n <= t1_centre + t1w_z_max * max(t1_scale, 1e-12))

    # Strong voxels: hyperintense against NAWM and grey matter on a lightly smoothed image (noise
    # suppression); a strong cluster counts when it reaches into the white-matter search region.
    flair_s = ndimage.gaussian_filter(flair_n, seed_smoothing_mm / sizes) if seed_smoothing_mm > 0 else flair_n
    s_wm_centre, s_wm_scale = robust_location_scale(flair_s[wm_core])
    # Grey matter where it is purest (T1w-FLAIR mixing line, independent of the calibration of the
    # fractions), with a scale of at least the NAWM noise scale: cortex everywhere, and near deep GM
    # also deep GM itself (often purer, so brighter, than a partial-volumed cortex). Without usable
    # grey matter (e.g. a cropped image) the NAWM criterion acts alone.
    t1w_s = ndimage.gaussian_filter(t1w_n, seed_smoothing_mm / sizes) if seed_smoothing_mm > 0 else t1w_n
    noise_scale = max(s_wm_scale, 1e-12)

    def grey_level(group: NDArray[np.bool_]) -> float:
        reference = _grey_matter_reference(flair_s, t1w_s, group, grey_bins)
        if reference is None:
            return -np.inf
        return reference[0] + gm_z_threshold * max(reference[1], noise_scale)

    grey = brain & (gm >= grey_threshold)
    cortex_bound = max(s_wm_centre + z_threshold * noise_scale, grey_level(grey if deepgm is None else grey & ~deepgm))
    grey_bound = np.full(flair_s.shape, cortex_bound)
    near_deepgm = None
    if deepgm is not None and deepgm.any():
        near_deepgm = ndimage.distance_transform_edt(~deepgm, sampling=sizes) <= deepgm_margin_mm
        grey_bound[near_deepgm] = max(cortex_bound, grey_level(brain & deepgm))
    # Inside white matter (most of a Gaussian neighbourhood is WM) a voxel clearly brighter than NAWM
    # is a lesion even when it is no brighter than cortex: small and faint lesions.
    # Deep grey matter is FLAIR-brighter than NAWM and surrounded by it: it needs the grey matter criterion.
    wm_context = ndimage.gaussian_filter(np.where(brain, np.clip(wm, 0.0, 1.0), 0.0), wm_context_sigma_mm / sizes)
    if near_deepgm is not None:
        wm_context[near_deepgm] = 0.0
    strong = not_t1_bright & (
        (flair_s >= grey_bound)
        | ((wm_context >= wm_context_min) & (flair_s >= s_wm_centre + context_z_threshold * noise_scale))
    )
    clusters, n_clusters = ndimage.label(strong, structure=_CONNECTIVITY_26)
    if n_clusters == 0:
        return np.zeros(flair_image.shape, dtype=np.int32)
    in_search = np.zeros(n_clusters + 1, dtype=bool)
    in_search[np.unique(clusters[strong & search])] = True
    in_search[0] = False
    clusters = np.where(in_search[clusters], clusters, 0)
    strong = clusters > 0
    if not strong.any():
        return np.zeros(flair_image.shape, dtype=np.int32)

    # Weak voxels near a cluster join it when brighter than half-way between NAWM and the cluster.
    index = np.arange(1, n_clusters + 1)
    level = np.full(n_clusters + 1, np.inf)
    present = in_search[1:]
    level[1:][present] = ndimage.labeled_comprehension(
        flair_n, clusters, index[present], lambda values: np.percentile(values, level_percentile), float, np.nan
    )
    boundary = wm_centre + boundary_fraction * (level - wm_centre)
    distance, nearest = ndimage.distance_transform_edt(~strong, sampling=sizes, return_indices=True)
    owner = clusters[tuple(nearest)]
    lesion = (
        not_t1_bright
        & (distance <= grow_max_mm)
        & ((flair_n - wm_centre) / scale >= grow_z)
        & (flair_n >= boundary[owner])
    )
    labels, _ = label_lesions(lesion, sizes, min_volume_mm3)
    return labels


def fill_lesions(
    t1w: ArrayLike,
    lesion_mask: ArrayLike,
    wm_mask: ArrayLike,
    voxel_size_mm: ArrayLike | float,
    *,
    sigma_mm: float = 5.0,
    exclusion_margin_mm: float = 1.5,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float64]:
    """Replace lesion voxels of a T1w image by the local normal-appearing white matter intensity.

    Lesions are hypointense in T1w and a tissue segmentation counts them as GM or CSF; filling them
    before segmentation keeps white matter volumes and probabilities right.

    Parameters
    ----------
    t1w
        T1-weighted image, arbitrary units, shape (X, Y, Z).
    lesion_mask
        Lesions (non-zero), same grid.
    wm_mask
        White matter (non-zero), same grid, e.g. ``wm_prob >= 0.5``.
    voxel_size_mm
        Voxel size along each axis, mm.
    sigma_mm
        Gaussian sigma of the local NAWM average, mm (default 5).
    exclusion_margin_mm
        White matter closer than this to a lesion is not used as NAWM (partial volume), mm (default 1.5).
    rng
        When given, Gaussian noise with the robust SD of the NAWM intensities is added to the filled
        voxels so they share the NAWM texture; ``None`` (default) fills with the smooth local mean.

    Returns
    -------
    ndarray of float
        Copy of ``t1w`` with lesion voxels filled; other voxels unchanged.

    Raises
    ------
    InputError
        Mismatched shapes, or no normal-appearing white matter to fill from.
    """
    image = np.asarray(t1w, dtype=float)
    lesion = np.asarray(lesion_mask) != 0
    wm = np.asarray(wm_mask) != 0
    _same_shape(image, {"lesion mask": lesion, "WM mask": wm})
    sizes = check_voxel_size(voxel_size_mm, image.ndim)
    filled = image.copy()
    if not lesion.any():
        return filled
    distance = ndimage.distance_transform_edt(~lesion, sampling=sizes)
    nawm = wm & ~lesion & (distance > exclusion_margin_mm) & np.isfinite(image)
    if nawm.sum() < 10:
        raise InputError("lesion filling: fewer than 10 normal-appearing white matter voxels; check the WM mask")
    local_mean = _smooth_field(np.where(nawm, image, 0.0), nawm, sigma_mm / sizes)
    values = local_mean[lesion]
    if rng is not None:
        _, spread = robust_location_scale(image[nawm] / local_mean[nawm])
        values = values * (1.0 + spread * rng.standard_normal(values.shape))
    filled[lesion] = values
    return filled

