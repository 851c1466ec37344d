"""Tissue compartments for partial-volume correction with fractional tissue maps.

Rousset's GTM (1998) treats each region as uniform. Our regions are thresholded tissue
fractions (a ``cortexgm`` voxel may hold 30 % CSF or WM), so a GTM over binary regions returns
the activity of each region's tissue *mixture*; a CSF-diluted reference then inflates every
BPND. Here each **compartment** is a tissue within an anatomical zone, described by its
fraction map (``f_GM`` in the cortex, ``f_WM`` in the cerebral WM zones, ``f_GM + f_WM`` in
thalamus and deep GM, ``f_CSF`` everywhere), and the GTM solves for the activity of every
compartment: the "tissue" activity the truth of a digital phantom, and the biology, refer to.
This follows the mixed-tissue formulation of Rousset et al. (1998) with the fractional
segmentations of Müller-Gärtner et al. (1992) and the high-resolution segmentation approach of
Greve et al. (2016, PETSurfer).

Observation regions (the GTM rows) are the voxels where each compartment dominates.

With lesion labels, every lesion's core and its rim (the WM shell of :func:`tspo_bids.pet.phenotypes.
lesion_core_and_rim`, 2 mm) are compartments of their own (``lesion-<i>-core``, ``lesion-<i>-rim``):
lesion phenotypes compare a lesion's core with its rim, and a single "lesion" compartment would
average a homogeneously active lesion with an inactive one.

Memory and time scale with the compartments' supports, not their number times the grid: a
compartment whose bounding box holds at most :data:`CROP_MAX_SHARE` of the grid (every lesion core
and rim; thalamus, deep GM) is stored as a :class:`BoxedMap` (its bounding box only), and its
spread function is computed near that box (:meth:`tspo_bids.pvc.forward.PetGridModel.project_box`:
the box grown by the PSF kernel radius and the spline margin, then the PET voxels' trilinear
footprint) and stored in its own box. The results equal those of full-grid maps (exactly for
trilinear PET sampling, to ~1e-11 relative for cubic; tests/pvc/test_compartment_crop.py).
``Compartments.fractions[j]`` and ``CompartmentGTM.spread[j]`` still give full-grid maps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from tspo_bids.anat.regions import REFERENCE_REGION, AtlasGroups
from tspo_bids.pet.phenotypes import CoreRim
from tspo_bids.pet.svca import SVCA_REGION
from tspo_bids.pvc.forward import Box, support_box

LOGGER = logging.getLogger(__name__)

#: Compartments by tissue type: GM-like regions report their GM compartment, WM-like their WM
#: compartments, mixed regions all tissue compartments inside them.
GM_COMPARTMENTS = ("cortexgm", REFERENCE_REGION)
#: WM compartments: lesions and perilesional shells bind differently; all other cerebral WM is one
#: tissue ("nawm"): splitting it into arbitrary zones only adds unknowns that model mismatch
#: pushes apart.
WM_COMPARTMENTS = ("lesion", "perilesion03", "perilesion36", "nawm")
SUBCORTICAL_COMPARTMENTS = ("thalamus", "deepgm")
CSF_COMPARTMENT = "csf"
#: Cerebellar (hemisphere and vermis) WM and vermis GM: the reference's neighbours, own compartments;
#: lumped into one only when either is the main tissue of no voxel.
CEREBELLAR_WM, VERMIS_GM, LUMPED_CEREBELLAR = "cerebellumwm", "vermisgm", "othertissue"

#: Region name -> the compartments whose tissue it reports (None: every tissue compartment inside it).
REGION_COMPARTMENTS: dict[str, tuple[str, ...] | None] = {
    "cortexgm": ("cortexgm",),
    REFERENCE_REGION: (REFERENCE_REGION,),
    "thalamus": ("thalamus",),
    "deepgm": ("deepgm",),
    "lesion": ("lesion",),
    "perilesion03": ("perilesion03",),
    "perilesion36": ("perilesion36",),
    "nawm": ("nawm",),
    "wm": WM_COMPARTMENTS,
    "wholebrain": None,
    # SVCA selects voxels whose kinetics are those of non-binding grey matter: its reference is the
    # activity of the GM inside them (mostly cerebellar hemisphere GM), not of their WM or CSF.
    SVCA_REGION: (*GM_COMPARTMENTS, VERMIS_GM),
}


def lesion_compartment_name(lesion_id: int, part: str) -> str:
    """Name of a lesion's own compartment: ``lesion-<id>-core`` or ``lesion-<id>-rim``."""
    if part not in ("core", "rim"):
        raise ValueError(f"lesion compartment part must be 'core' or 'rim', got {part!r}")
    return f"lesion-{int(lesion_id):03d}-{part}"


def parent_compartment(name: str) -> str:
    """The MS region a compartment belongs to: a lesion core -> ``lesion``, a 2 mm rim ->
    ``perilesion03`` (the rim lies in the 0-3 mm shell); other names are their own parent."""
    if name.startswith("lesion-") and name.endswith("-core"):
        return "lesion"
    if name.startswith("lesion-") and name.endswith("-rim"):
        return "perilesion03"
    return name


#: A compartment's fraction map (and its spread function) is stored, and forward-projected, in its
#: bounding box when that box holds at most this share of the grid's voxels (lesions' cores and
#: rims, thalamus, deep GM); larger ones are kept on the full grid.
CROP_MAX_SHARE = 0.5


@dataclass(frozen=True, eq=False)
class BoxedMap:
    """An image on a 3D grid held only inside a box: zero outside it.

    Attributes
    ----------
    values : ndarray
        The image inside ``box`` (shape of the box).
    box : tuple of slice
        ``slice(start, stop)`` per axis; the whole grid for maps that are not cropped.
    shape : tuple of int
        The grid's shape.
    """

    values: NDArray[np.floating]
    box: Box
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        box = tuple(slice(int(s.start), int(s.stop)) for s in self.box)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if tuple(s.stop - s.start for s in box) != np.shape(self.values) or any(
                s.start < 0 or s.stop > n for s, n in zip(box, self.shape)):
            raise ValueError(f"values of shape {np.shape(self.values)} do not fit box {box} of grid {self.shape}")

    @property
    def is_full_grid(self) -> bool:
        """True when the box is the whole grid (``values`` is then the full image)."""
        return np.shape(self.values) == self.shape

    def full(self) -> NDArray[np.floating]:
        """The image on the whole grid (a new array unless the map is full-grid)."""
        if self.is_full_grid:
            return self.values
        image = np.zeros(self.shape, self.values.dtype)
        image[self.box] = self.values
        return image


def boxed_map(image: NDArray, max_share: float = CROP_MAX_SHARE) -> BoxedMap:
    """Store an image in the bounding box of its non-zero voxels if that box holds at most
    ``max_share`` of the grid (a copy of the box), else as it is (no copy)."""
    image = np.asarray(image)
    shape = image.shape
    box = support_box(image)
    if box is None:
        box = (slice(0, 0), slice(0, 0), slice(0, 0))
    if np.prod([s.stop - s.start for s in box]) > max_share * image.size:
        return BoxedMap(image, (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2])), shape)
    return BoxedMap(image[box].copy(), box, shape)


class FullGridMaps(Sequence[NDArray[np.floating]]):
    """Read-only sequence of :class:`BoxedMap`: item ``i`` is map ``i`` on the full grid.

    Cropped maps are expanded on access, one at a time (``sum(maps)`` holds one full image besides
    the sum); the numerics use :attr:`boxed` and never expand them.
    """

    def __init__(self, maps: Sequence[BoxedMap]) -> None:
        self._maps = tuple(maps)

    @property
    def boxed(self) -> tuple[BoxedMap, ...]:
        """The maps as stored."""
        return self._maps

    def __len__(self) -> int:
        return len(self._maps)

    @overload
    def __getitem__(self, index: int) -> NDArray[np.floating]: ...

    @overload
    def __getitem__(self, index: slice) -> FullGridMaps: ...

    def __getitem__(self, index: int | slice) -> NDArray[np.floating] | FullGridMaps:
        if isinstance(index, slice):
            return FullGridMaps(self._maps[index])
        return self._maps[index].full()

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored maps."""
        return sum(m.values.nbytes for m in self._maps)


def _as_boxed(maps: Sequence[NDArray] | FullGridMaps) -> tuple[BoxedMap, ...]:
    if isinstance(maps, FullGridMaps):
        return maps.boxed
    return tuple(m if isinstance(m, BoxedMap) else boxed_map(m) for m in maps)


@dataclass(frozen=True, eq=False)
class Compartments:
    """Fraction maps of the tissue compartments on the T1w grid.

    Attributes
    ----------
    names : tuple of str
        Compartment names; ``"csf"`` last.
    fractions : FullGridMaps
        One fraction map per compartment (0-1; float32 from :func:`tissue_compartments`); they sum
        to 1 inside the brain. Given as full-grid arrays or :class:`BoxedMap`; maps whose support
        is small (:data:`CROP_MAX_SHARE`) are held in their bounding box, and ``fractions[i]``
        returns the full-grid map.
    """

    names: tuple[str, ...]
    fractions: FullGridMaps

    def __post_init__(self) -> None:
        maps = _as_boxed(self.fractions)
        object.__setattr__(self, "names", tuple(self.names))
        if len(maps) != len(self.names):
            raise ValueError(f"{len(self.names)} compartment names but {len(maps)} fraction maps")
        if len({m.shape for m in maps}) > 1:
            raise ValueError("fraction maps on different grids")
        object.__setattr__(self, "fractions", FullGridMaps(maps))

    @property
    def boxed(self) -> tuple[BoxedMap, ...]:
        """The fraction maps as stored (cropped or full-grid)."""
        return self.fractions.boxed

    @property
    def shape(self) -> tuple[int, int, int]:
        """The T1w grid's shape."""
        return self.boxed[0].shape

    def dominant_labels(self, brain_mask: NDArray[np.bool_]) -> NDArray[np.int32]:
        """Label image (1-based, compartment order) of the compartment with the largest fraction
        (the first one on ties; a running maximum: no stack of all fraction maps in memory).

        A cropped map is compared inside its box only; outside it its fraction is 0, which can win
        only voxels where every earlier map is negative (or none came before): those are updated
        on the full grid, so the result is that of the full-grid maps.
        """
        best = np.full(np.shape(brain_mask), -np.inf, np.float32)
        labels = np.zeros(np.shape(brain_mask), np.int32)
        below_zero = best.size  # voxels where best < 0 (0 would win them)
        for index, fraction in enumerate(self.boxed, start=1):
            if not fraction.is_full_grid and below_zero:
                outside = best < 0
                outside[fraction.box] = False
                best[outside] = 0.0
                labels[outside] = index
            region_best, region_labels = best[fraction.box], labels[fraction.box]
            larger = fraction.values > region_best
            region_best[larger] = fraction.values[larger]
            region_labels[larger] = index
            if below_zero:
                below_zero = int(np.count_nonzero(best < 0))
        return np.where(brain_mask, labels, 0).astype(np.int32)


def tissue_compartments(
    gm_prob: NDArray,
    wm_prob: NDArray,
    csf_prob: NDArray,
    brain_mask: NDArray,
    atlas: AtlasGroups,
    ms_masks: Mapping[str, NDArray] | None = None,
    lesion_rims: CoreRim | None = None,
) -> Compartments:
    """Split the brain's tissue fractions into anatomical compartments.

    Parameters
    ----------
    gm_prob, wm_prob, csf_prob : ndarray, shape (X, Y, Z)
        Partial-volume fractions on the T1w grid (sum 1 in the brain).
    brain_mask : ndarray of bool
    atlas : AtlasGroups
        Cerebellum, vermis, thalamus and deep-GM masks on the T1w grid.
    ms_masks : mapping, optional
        ``lesion``, ``perilesion03``, ``perilesion36`` masks (binary); their WM fraction forms one
        compartment each (first listed wins where they overlap); the rest of the cerebral WM
        fraction forms ``nawm``.
    lesion_rims : CoreRim, optional
        Lesion cores and rims (:func:`tspo_bids.pet.phenotypes.lesion_core_and_rim`): the WM
        fraction of each core and of each rim forms a compartment of its own, carved out of the
        cerebral WM before the MS masks (cores, then rims).

    Returns
    -------
    Compartments
        Empty compartments are left out.
    """
    brain = np.asarray(brain_mask, bool)
    gm = np.where(brain, gm_prob, 0).astype(np.float32)
    wm = np.where(brain, wm_prob, 0).astype(np.float32)
    csf = np.where(brain, csf_prob, 0).astype(np.float32)
    cerebellum, vermis = atlas.cerebellum & brain, atlas.vermis & brain & ~atlas.cerebellum
    thalamus, deepgm = atlas.thalamus & brain & ~cerebellum, atlas.deepgm & brain & ~cerebellum
    cerebral = brain & ~(cerebellum | vermis | thalamus | deepgm)

    unassigned_wm = cerebral.copy()
    lesion_maps = _lesion_maps(lesion_rims, wm, unassigned_wm) if lesion_rims is not None else {}
    wm_zones: dict[str, NDArray[np.bool_]] = {}
    for name in WM_COMPARTMENTS[:-1]:
        mask = np.asarray((ms_masks or {}).get(name, np.zeros_like(brain)), bool) & unassigned_wm
        wm_zones[name] = mask
        unassigned_wm &= ~mask
    wm_zones["nawm"] = unassigned_wm

    maps: dict[str, NDArray[np.float32] | BoxedMap] = {
        "cortexgm": gm * cerebral,
        REFERENCE_REGION: gm * cerebellum,
        "thalamus": (gm + wm) * thalamus,
        "deepgm": (gm + wm) * deepgm,
        **lesion_maps,
        **{name: wm * zone for name, zone in wm_zones.items()},
        # Cerebellar WM and vermis GM border the reference: each is a compartment of its own, since
        # one lumped compartment (WM-like and cortex-like kinetics under one activity) misstates their
        # spill into the reference by a time-varying amount (on a noise-free, motion-free simulation
        # of data/test_bids with its true fractions: up to 2.6 % of the reference TAC lumped, at most
        # 0.7 % split; benchmarks/gtm_reference_fractions.py).
        CEREBELLAR_WM: wm * (cerebellum | vermis),
        VERMIS_GM: gm * vermis,
        CSF_COMPARTMENT: csf,
    }
    kept = {name: m if isinstance(m, BoxedMap) else boxed_map(m.astype(np.float32, copy=False))
            for name, m in maps.items()}
    kept = {name: m for name, m in kept.items() if float(m.values.sum()) > 0}
    compartments = _merge_wm_zones_without_voxels(Compartments(tuple(kept), tuple(kept.values())), brain)
    return _merge_cerebellar_without_voxels(compartments, brain)


def _merge_wm_zones_without_voxels(compartments: Compartments, brain: NDArray[np.bool_]) -> Compartments:
    """Return to ``nawm`` the WM of every lesion core or rim and MS zone (lesion, perilesional shells) that
    dominates no voxel (a juxtacortical lesion whose rim is mostly cortex, a zone cut by the brain mask): the
    GTM needs an observation region for every compartment, and such a zone's WM cannot be told apart from the
    WM around it. Logged, one line per zone."""
    names = list(compartments.names)
    if "nawm" not in names:
        return compartments
    counts = np.bincount(compartments.dominant_labels(brain).ravel(), minlength=len(names) + 1)[1:]
    unobserved = [name for name, count in zip(names, counts)
                  if count == 0 and parent_compartment(name) in WM_COMPARTMENTS and name != "nawm"]
    if not unobserved:
        return compartments
    maps = dict(zip(names, compartments.boxed))
    nawm = maps["nawm"].full().copy()
    for name in unobserved:
        LOGGER.info("%s is the main tissue of no voxel: its WM is corrected as normal-appearing WM", name)
        moved = maps.pop(name)
        nawm[moved.box] += moved.values
    maps["nawm"] = boxed_map(nawm)
    return Compartments(tuple(maps), tuple(maps.values()))


def _merge_cerebellar_without_voxels(compartments: Compartments, brain: NDArray[np.bool_]) -> Compartments:
    """Lump cerebellar WM and vermis GM into one ``othertissue`` compartment if either one
    dominates no voxel (a cropped field of view, a thin vermis): the GTM needs an observation
    region for every compartment, and one tissue of the two cannot be told apart there anyway."""
    names = list(compartments.names)
    if CEREBELLAR_WM not in names or VERMIS_GM not in names:
        return compartments
    counts = np.bincount(compartments.dominant_labels(brain).ravel(), minlength=len(names) + 1)[1:]
    if min(counts[names.index(CEREBELLAR_WM)], counts[names.index(VERMIS_GM)]) > 0:
        return compartments
    LOGGER.info("cerebellar WM or vermis GM is the main tissue of no voxel: one compartment for both")
    maps = dict(zip(names, compartments.boxed))
    lumped = maps.pop(CEREBELLAR_WM).full() + maps.pop(VERMIS_GM).full()
    merged = {**{n: m for n, m in maps.items() if n != CSF_COMPARTMENT}, LUMPED_CEREBELLAR: boxed_map(lumped)}
    if CSF_COMPARTMENT in maps:
        merged[CSF_COMPARTMENT] = maps[CSF_COMPARTMENT]
    return Compartments(tuple(merged), tuple(merged.values()))


def _lesion_maps(lesion_rims: CoreRim, wm: NDArray[np.float32],
                 unassigned_wm: NDArray[np.bool_]) -> dict[str, BoxedMap]:
    """WM fraction of every lesion's core, then of every rim, each in its bounding box.

    Each zone is carved out of ``unassigned_wm`` (updated in place) in that order, inside the
    bounding box of the lesion's label only: the cost and memory scale with the lesions' boxes.
    """
    shape = wm.shape
    ids = [int(i) for i in lesion_rims.lesion_ids]
    maps: dict[str, BoxedMap] = {}
    empty = _tightened(np.zeros((0, 0, 0), np.float32), (slice(0, 0),) * 3, shape)  # type: ignore[arg-type]
    for part, labels in (("core", lesion_rims.core_labels), ("rim", lesion_rims.rim_labels)):
        labels = np.asarray(labels)
        boxes = ndimage.find_objects(labels.astype(np.int32, copy=False), max_label=max(ids, default=0))
        for lesion_id in ids:
            name = lesion_compartment_name(lesion_id, part)
            box = boxes[lesion_id - 1] if 0 < lesion_id <= len(boxes) else None
            if box is None:
                maps[name] = empty
                continue
            zone = (labels[box] == lesion_id) & unassigned_wm[box]
            unassigned_wm[box] &= ~zone
            maps[name] = _tightened(wm[box] * zone, box, shape)
    return maps


def _observation_counts(labels: NDArray[np.int64], names: tuple[str, ...]) -> NDArray[np.float64]:
    counts = np.bincount(labels, minlength=len(names) + 1)[1:].astype(float)
    if np.any(counts == 0):
        empty = [names[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"observation regions without voxels: {', '.join(empty)}")
    return counts


def _matrix_from_spread(
    spread: Sequence[BoxedMap], labels: NDArray[np.int64], counts: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``G[i, j]`` = mean of compartment j's spread function over observation region i.

    ``labels`` is the observation label image (3D); each spread function is summed inside its own
    box only (it is zero outside), in the same voxel order as a full-grid sum.
    """
    n = counts.size
    matrix = np.empty((n, n))
    for j, rsf in enumerate(spread):
        sums = np.bincount(labels[rsf.box].ravel(), weights=np.asarray(rsf.values, float).ravel(), minlength=n + 1)
        matrix[:, j] = sums[1 : n + 1] / counts
    return matrix


def _tightened(values: NDArray, box: Box, shape: tuple[int, int, int]) -> BoxedMap:
    """A boxed image cut down to the bounding box of its non-zero voxels."""
    tight = support_box(values) if values.size else None
    if tight is None:
        return BoxedMap(values[:0, :0, :0], (slice(0, 0), slice(0, 0), slice(0, 0)), shape)
    place = tuple(slice(b.start + t.start, b.start + t.stop) for b, t in zip(box, tight))
    return BoxedMap(values[tight].copy(), place, shape)  # type: ignore[arg-type]


def spread_functions(
    compartments: Compartments,
    forward: Callable[[NDArray[np.floating]], NDArray[np.floating]],
    dtype: type[np.floating] | None = None,
) -> tuple[BoxedMap, ...]:
    """Every compartment's spread function ``forward(fraction)`` on the T1w grid, each in its own box.

    A cropped fraction map goes through ``forward.project_box(values, box)`` when the forward model
    offers it (:meth:`tspo_bids.pvc.forward.PetGridModel.project_box`: cost and memory scale with
    the box); otherwise through ``forward`` on the full grid, one map at a time. Each result is
    kept in the bounding box of its non-zero voxels when that is small (:func:`boxed_map`).

    Parameters
    ----------
    compartments : Compartments
    forward : callable
        Linear measurement model on T1w-grid images (PSF blur, PET voxelisation, resampling back).
    dtype : floating type, optional
        Type the spread functions are stored in (default: what ``forward`` returns).
    """
    project = getattr(forward, "project_box", None)
    spread = []
    for fraction in compartments.boxed:
        if project is not None and not fraction.is_full_grid:
            values, box = project(fraction.values, fraction.box)
            values = np.asarray(values, dtype) if dtype is not None else np.asarray(values)
            result = _tightened(values, box, fraction.shape)
        else:
            image = np.asarray(forward(fraction.full()))
            if image.shape != fraction.shape:
                raise ValueError(f"forward returned shape {image.shape}, expected {fraction.shape}")
            result = boxed_map(image.astype(dtype, copy=False) if dtype is not None else image)
        spread.append(result)
    return tuple(spread)


def compartment_gtm_matrix(
    compartments: Compartments,
    observation_labels: NDArray[np.int32],
    forward: Callable[[NDArray[np.floating]], NDArray[np.floating]],
) -> NDArray[np.float64]:
    """GTM matrix ``G[i, j]``: mean of ``forward(fraction_j)`` over observation region ``i``.

    Parameters
    ----------
    compartments : Compartments
    observation_labels : ndarray of int
        Observation regions (1..N; 0 ignored), N = number of compartments.
    forward : callable
        Maps a T1w-grid image to what the pipeline measures on the T1w grid (PSF blur, PET
        voxelisation, resampling back), e.g. a :class:`tspo_bids.pvc.forward.PetGridModel`
        (whose ``project_box`` forward-projects cropped compartments near their support only).
    """
    labels = np.asarray(observation_labels)
    counts = _observation_counts(labels.ravel(), compartments.names)
    return _matrix_from_spread(spread_functions(compartments, forward), labels.reshape(compartments.shape), counts)


def region_weights(
    region_masks: Mapping[str, NDArray],
    compartments: Compartments,
) -> dict[str, NDArray[np.float64]]:
    """Weights that turn compartment activities into each region's corrected activity.

    A region reports the compartments of its tissue (:data:`REGION_COMPARTMENTS`), each weighted
    by its fraction summed over the region's voxels; CSF never counts. Regions not in the table
    report all tissue compartments inside them.

    Returns
    -------
    dict of str to ndarray, shape (n_compartments,)
        Weights summing to 1 (all zero if the region holds none of its compartments).
    """
    weights = {}
    for region, mask in region_masks.items():
        mask = np.asarray(mask, bool)
        wanted = REGION_COMPARTMENTS.get(region)
        w = np.zeros(len(compartments.names))
        for j, (name, fraction) in enumerate(zip(compartments.names, compartments.boxed)):
            if name == CSF_COMPARTMENT or (wanted is not None and parent_compartment(name) not in wanted):
                continue
            w[j] = float(fraction.values[mask[fraction.box]].sum())
        total = w.sum()
        weights[region] = w / total if total > 0 else w
    return weights


@dataclass(frozen=True, eq=False)
class CompartmentGTM:
    """Tissue-compartment GTM of one PET series.

    Attributes
    ----------
    activities : ndarray, shape (n_compartments, n_frames)
        Corrected activity of every compartment (the series' unit).
    matrix : ndarray, shape (n_compartments, n_compartments)
        The geometric transfer matrix.
    condition_number : float
    spread : FullGridMaps
        Each compartment's spread function on the T1w grid (``forward(fraction)``, float32), kept
        for RBV; held in its own box (``spread.boxed``), ``spread[j]`` is the full-grid map.
    """

    activities: NDArray[np.float64]
    matrix: NDArray[np.float64]
    condition_number: float
    spread: FullGridMaps


def compartment_gtm(
    series: NDArray,
    compartments: Compartments,
    brain_mask: NDArray,
    forward: Callable[[NDArray[np.float32]], NDArray[np.floating]],
) -> CompartmentGTM:
    """Correct a T1w-grid PET series (X, Y, Z, frames) for partial volumes, every frame at once.

    One linear solve for all frames: ``observed = G @ activities``, observed being the series'
    means over the observation regions (where each compartment dominates).
    """
    from tspo_bids.pvc.gtm import gtm_correct

    labels = compartments.dominant_labels(np.asarray(brain_mask, bool))
    flat_labels = labels.ravel()
    n = len(compartments.names)
    counts = _observation_counts(flat_labels, compartments.names)
    spread = spread_functions(compartments, forward, np.float32)
    matrix = _matrix_from_spread(spread, labels, counts)
    frames = np.asarray(series, np.float32).reshape(-1, series.shape[-1])
    inside = flat_labels > 0
    observed = np.stack([np.bincount(flat_labels[inside], weights=frames[inside, t], minlength=n + 1)[1:]
                         for t in range(frames.shape[1])], axis=1) / counts[:, None]
    return CompartmentGTM(gtm_correct(observed, matrix), matrix, float(np.linalg.cond(matrix)), FullGridMaps(spread))


def compartment_rbv(
    series: NDArray,
    compartments: Compartments,
    gtm: CompartmentGTM,
    brain_mask: NDArray,
    numerator: str = "dominant",
    eps: float = 1e-3,
) -> NDArray[np.float32]:
    """Region-based voxelwise correction (Thomas et al. 2011) with tissue compartments.

    ``corrected(x, t) = PET(x, t) * N(x, t) / (forward S)(x, t)``, ``S = sum_j fraction_j *
    activity_j(t)`` the synthetic image. Forward projection is linear, so ``forward S =
    sum_j activity_j(t) * spread_j`` needs no further blurring.

    ``numerator="mixture"`` is classical RBV (``N = S``): spill-over is removed but each voxel
    keeps its own tissue mixture (a cortical voxel stays part GM, part CSF/WM).
    ``numerator="dominant"`` (default) uses the activity of the voxel's dominant compartment
    (``N = activity_dom(x)``), as Müller-Gärtner et al. (1992) correct GM voxels to pure GM: every
    voxel then estimates the activity of its own tissue, the quantity the compartment GTM reports,
    so maps and GTM agree region by region.

    Outside the brain, or where ``forward S`` is below ``eps`` times its maximum, the voxel is 0.
    The sums over compartments run over each cropped map's box only (brain voxels): besides the
    series and the result, memory holds one float64 row per full-grid compartment and brain voxel.

    Returns
    -------
    ndarray, shape (X, Y, Z, n_frames), float32
    """
    if numerator not in ("dominant", "mixture"):
        raise ValueError(f"numerator must be 'dominant' or 'mixture', got {numerator!r}")
    brain = np.asarray(brain_mask, bool)
    corrected = np.zeros(series.shape, np.float32)
    position = np.full(brain.shape, -1, np.int32)  # voxel -> its index among the brain voxels
    position[brain] = np.arange(int(np.count_nonzero(brain)), dtype=np.int32)
    spread = _BrainVoxelMaps(gtm.spread.boxed, position)
    fractions = _BrainVoxelMaps(compartments.boxed, position) if numerator == "mixture" else None
    own = compartments.dominant_labels(brain)[brain] - 1
    for t in range(series.shape[-1]):
        activity = gtm.activities[:, t]
        wanted = fractions.combine(activity) if fractions is not None else activity[own]
        blurred = spread.combine(activity)
        pet = np.asarray(series[..., t], np.float32)[brain]
        valid = np.abs(blurred) > eps * max(float(np.max(np.abs(blurred), initial=0.0)), 1e-30)
        frame = np.zeros(brain.shape, np.float32)
        frame[brain] = np.where(valid, pet * wanted / np.where(valid, blurred, 1.0), 0.0)
        corrected[..., t] = frame
    return corrected


class _BrainVoxelMaps:
    """Maps restricted to the brain voxels, for ``sum_j a_j map_j`` image after image.

    Full-grid maps are stacked ``(n_full, n_brain)`` (float64, one matrix product per image);
    cropped maps keep only their brain voxels (their own type) and where those are (int32: 8 bytes
    per voxel of a float32 map).
    """

    def __init__(self, maps: Sequence[BoxedMap], position: NDArray[np.int32]) -> None:
        self.n_voxels = int(np.count_nonzero(position >= 0))
        self.full_rows = [j for j, m in enumerate(maps) if m.is_full_grid]
        inside = position >= 0
        self.stack = np.empty((len(self.full_rows), self.n_voxels))
        for row, j in enumerate(self.full_rows):
            self.stack[row] = maps[j].values[inside]
        self.cropped: list[tuple[int, NDArray[np.int32], NDArray[np.floating]]] = []
        for j, m in enumerate(maps):
            if m.is_full_grid:
                continue
            where = position[m.box]
            kept = where >= 0
            self.cropped.append((j, where[kept], m.values[kept]))

    def combine(self, weights: NDArray[np.float64]) -> NDArray[np.float64]:
        """``sum_j weights[j] * map_j`` on the brain voxels (float64)."""
        total = weights[self.full_rows] @ self.stack if self.full_rows else np.zeros(self.n_voxels)
        for j, where, values in self.cropped:
            total[where] += float(weights[j]) * values.astype(np.float64)
        return total
