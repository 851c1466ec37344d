"""Participant workflow: one PET run with its T1w (and FLAIR), from raw data to derivatives."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nipype.pipeline import engine as pe

from tspo_bids import __version__
from tspo_bids.kinetics import FrameTiming
from tspo_bids.pet.models import canonical_model_name
from tspo_bids.pet.phenotypes import RIM_WIDTH_MM
from tspo_bids.pet.svca import BLOOD_WINDOW_END_MIN, SVCA_REGION
from tspo_bids.registration.transforms import DEFAULT_RANDOM_SEED
from tspo_bids.anat.regions import REFERENCE_DEFINITION, REFERENCE_REGION
from tspo_bids.interfaces.bids import DerivativesDataSink, K2PrimeMeta
from tspo_bids.interfaces.lesions import LesionStatistics
from tspo_bids.workflows.anat import init_anat_wf
from tspo_bids.workflows.maps import init_parametric_maps_wf
from tspo_bids.workflows.modelling import init_modelling_wf
from tspo_bids.workflows.pvc import init_pvc_wf
from tspo_bids.workflows.group_svca import classes_file_for
from tspo_bids.workflows.svca import has_svca_class_frames, init_svca_wf
from tspo_bids.workflows.pet import init_pet_wf

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """One derivative: which workflow output, which source file's entities, which name."""

    node: str  # "anat", "pet", "modelling", "maps", "pvc", "svca" (sub-workflow outputnodes) or "lesions",
    # "lesions_pvc" (nodes)
    field: str  # outputnode field
    source: str  # "t1w" or "pet": whose entities the name reuses
    datatype: str
    suffix: str
    entities: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # entities filled from list outputs (one MapNode sink over them): (entity, outputnode field)
    iterate: tuple[tuple[str, str], ...] = ()
    needs_flair: bool = False
    needs_pvc: bool | str = False  # True: any --pvc; "rbv": only --pvc rbv
    needs_ref: str | None = None  # written only with this --ref-region; "!svca": only without svca


def _outputs(metadata: dict, settings: Any, t1w_reference: str, svca_classes: Path | None = None) -> list[Output]:
    """The table of participant derivatives (names follow ../shared/conventions.md).

    ``t1w_reference`` is the BIDS URI of the raw T1w whose grid defines ``space-T1w``; ``svca_classes``
    the SVCA class table of ``--ref-region svca``.
    """
    preproc_pet_meta = {
        **{k: metadata[k] for k in ("TracerName", "TracerRadionuclide", "InjectedRadioactivity",
                                    "InjectedRadioactivityUnits", "Units", "FrameTimesStart",
                                    "FrameDuration", "InjectionStart", "TimeZero") if k in metadata},
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": metadata.get("InjectionStart", 0),
        "SkullStripped": False,
        "Description": "Decay-corrected to injection and frame-wise rigid motion-corrected PET (native space).",
    }
    tacs_meta = {
        "FrameTimesStart": metadata.get("FrameTimesStart"),
        "FrameDuration": metadata.get("FrameDuration"),
        "InjectionStart": metadata.get("InjectionStart", 0),
        "Units": metadata.get("Units", "kBq/mL"),
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": metadata.get("InjectionStart", 0),
        "ReferenceRegion": settings_reference(settings),
        "frame_start": {"Description": "Frame start relative to TimeZero", "Units": "s"},
        "frame_end": {"Description": "Frame end relative to TimeZero", "Units": "s"},
        "Description": "Mean activity in each T1w-space region of the PET resampled to T1w, every frame.",
    }
    kinpar_meta = {
        "ReferenceRegion": settings_reference(settings),
        "SoftwareName": "tspo-bids",
        "SoftwareVersion": __version__,
        "CommandLine": getattr(settings, "command_line", ""),
        "TracerName": metadata.get("TracerName"),
        "AdditionalModelDetails": {
            "t_star_min": settings.t_star_min,
            "suvr_window_min": list(settings.suvr_window_min) if settings.suvr_window_min else None,
            "weights": "Poisson frame weights from the whole-brain TAC (dur / (C_wb * DCF))",
        },
        "BPND": {"Description": "Non-displaceable binding potential", "Units": "unitless"},
        "DVR": {"Description": "Distribution volume ratio (BPND + 1)", "Units": "unitless"},
        "R1": {"Description": "Relative delivery K1/K1'", "Units": "unitless"},
        "k2": {"Description": "Target efflux rate constant", "Units": "1/min"},
    }
    pvc_meta = {
        "PartialVolumeCorrection": {
            "Method": (settings.pvc or "none").upper(),
            "Description": "tissue-compartment geometric transfer matrix (Rousset 1998) with fractional "
                           "tissue maps; RBV: region-based voxelwise correction (Thomas 2011)",
            "PointSpreadFunctionFWHM": {"Value": list(settings.pvc_psf_mm or []), "Units": "mm"},
        },
    }
    if settings_reference(settings) == SVCA_REGION:
        pvc_meta["PartialVolumeCorrection"]["ReferenceRegionDescription"] = (
            "svca: the corrected activity of the grey-matter compartments inside the SVCA reference mask, "
            "each weighted by its GM fraction there (WM and CSF in those voxels do not count)")
    map_meta = {
        **{k: v for k, v in kinpar_meta.items() if k not in ("BPND", "DVR", "R1", "k2")},
        "ModelName": "voxelwise reference-tissue model (model- entity): SRTM and SRTM2 by basis functions "
                     "(Gunn 1997; Wu & Carson 2002), Logan reference plot (Logan 1996), SUVR",
        "Units": "unitless (k2: 1/min)",
        "Description": "Parametric map inside the brain mask (NaN outside or where a voxel could not be fitted); "
                       "SRTM2 and Logan use the data-derived k2' (median k2/R1 of well-fitted SRTM voxels).",
    }
    outputs = [
        Output("anat", "t1w_preproc", "t1w", "anat", "T1w", {"desc": "preproc"},
               {"Description": "N4 bias-field corrected T1w", "SkullStripped": False}),
        Output("anat", "brain_mask", "t1w", "anat", "mask", {"desc": "brain"}, {"Type": "Brain"}),
        Output("anat", "dseg", "t1w", "anat", "dseg", {},
               {"Labels": {"1": "CSF", "2": "GM", "3": "WM"}}),
        Output("anat", "gm_prob", "t1w", "anat", "probseg", {"label": "GM"}),
        Output("anat", "wm_prob", "t1w", "anat", "probseg", {"label": "WM"}),
        Output("anat", "csf_prob", "t1w", "anat", "probseg", {"label": "CSF"}),
        Output("anat", "mask_files", "t1w", "anat", "mask", {},
               {"Description": "Region mask in T1w space (definitions: tspo_bids.anat.regions)"},
               iterate=(("label", "region_names"),)),
        Output("anat", "reference_mask", "t1w", "anat", "mask",
               {"label": REFERENCE_REGION, "desc": "ref"},
               {"Description": f"Reference region: cerebellar grey matter ({REFERENCE_DEFINITION}; methods: "
                               "README)"}, needs_ref="!svca"),
        Output("anat", "lesion_labels", "t1w", "anat", "dseg", {"desc": "lesions"},
               {"Description": "MS lesions in T1w space: 0 background, 1..N one label per lesion (connected "
                               "components of at least the minimum volume); from the user's mask when given, "
                               "else segmented from FLAIR + T1w"}),
        Output("anat", "region_table", "t1w", "anat", "morph", {"seg": "tspo"},
               {"volume_mm3": {"Description": "Region volume", "Units": "mm^3"}}),
        Output("anat", "flair_t1w", "t1w", "anat", "FLAIR", {"space": "T1w", "desc": "preproc"},
               {"SkullStripped": False, "SpatialReference": t1w_reference,
                "Description": "FLAIR rigidly registered and resampled to the T1w grid"},
               needs_flair=True),
        Output("anat", "flair_xfm", "t1w", "anat", "xfm", {"from_": "FLAIR", "to": "T1w", "mode": "image"},
               needs_flair=True),
        Output("pet", "pet_ref", "pet", "pet", "petref", {}, {"Description": "PET motion-correction reference"}),
        Output("pet", "pet_to_t1w_xfm", "pet", "pet", "xfm", {"from_": "pet", "to": "T1w", "mode": "image"}),
        Output("pet", "motion_file", "pet", "pet", "timeseries", {"desc": "confounds"},
               {"displacement_mm": {"Description": "Mean displacement of brain voxels from the "
                                    "reference, per frame", "Units": "mm"}}),
        Output("pet", "pet_mc", "pet", "pet", "pet", {"desc": "preproc"}, preproc_pet_meta),
        Output("modelling", "tacs_file", "pet", "pet", "tacs", {"seg": "tspo", "desc": "preproc"}, tacs_meta),
        Output("modelling", "kinpar_files", "pet", "pet", "kinpar", {}, kinpar_meta,
               iterate=(("model", "model_names"),)),
        Output("svca", "class_table", "pet", "pet", "tacs", {"seg": "svca", "desc": "normalised"},
               {**{k: tacs_meta[k] for k in ("FrameTimesStart", "FrameDuration", "InjectionStart")},
                "Description": "This session's SVCA kinetic class curves on its per-frame z-scored brain voxel "
                               "TACs (T1w space); 'group --build-svca-classes' averages the healthy controls' "
                               "curves (methods: README).",
                "frame_start": {"Description": "Frame start, seconds from injection", "Units": "s"},
                "frame_end": {"Description": "Frame end, seconds from injection", "Units": "s"},
                "gm": {"Description": "Grey matter p > 0.9 in the cerebellar grey-matter reference region "
                                      "(tissue assumed non-binding)", "Units": "unitless (z-score)"},
                "wm": {"Description": "White matter p > 0.9", "Units": "unitless (z-score)"},
                "highbinding": {"Description": "Atlas thalamus", "Units": "unitless (z-score)"},
                "blood": {"Description": "40 hottest brain voxels of the frames ending before 1.5 min",
                          "Units": "unitless (z-score)"}}),
        Output("svca", "gm_fraction", "pet", "pet", "probseg", {"space": "T1w", "label": "GM", "desc": "svca"},
               {"SpatialReference": t1w_reference, "Units": "unitless",
                "Description": "SVCA kinetic grey-matter fraction of every brain voxel: non-negative, sum-to-one "
                               "least squares of its z-scored TAC onto the controls' classes and a "
                               "zero-activity background class (methods: README)",
                "SVCAClasses": _classes_reference(svca_classes, settings)}, needs_ref="svca"),
        Output("svca", "reference_mask", "pet", "pet", "mask", {"space": "T1w", "label": "svca", "desc": "ref"},
               {"SpatialReference": t1w_reference, "Type": "ROI",
                "Description": "Reference region: SVCA voxels (kinetic GM fraction > 0.9 and GM probability > 0.9); "
                               "the reference TAC is their mean (column 'svca' of the regional TACs)"},
               needs_ref="svca"),
        Output("lesions", "table", "pet", "pet", "kinpar", {"model": "SRTM2", "desc": "lesions"},
               {"Description": "Per-lesion volume (mm^3) and DVR statistics of the lesion core and its rim "
                               "(a shell outside the lesion, in WM), from the T1w-space SRTM2 DVR map; the "
                               "group level classifies lesions with a threshold from healthy controls.",
                "RimWidth": {"Value": RIM_WIDTH_MM, "Units": "mm"}}),
        Output("lesions_pvc", "table", "pet", "pet", "kinpar", {"pvc": "RBV", "model": "SRTM2", "desc": "lesions"},
               {**pvc_meta, "Description": "Per-lesion volume (mm^3) and DVR statistics of the lesion core and its "
                "rim, from the partial-volume corrected (RBV) T1w-space SRTM2 DVR map; each lesion's core and rim "
                "are compartments of their own in the correction.",
                "RimWidth": {"Value": RIM_WIDTH_MM, "Units": "mm"}}, needs_pvc="rbv"),
        Output("pvc", "tacs_file", "pet", "pet", "tacs", {"pvc": "GTM", "seg": "tspo", "desc": "preproc"},
               {**tacs_meta, **pvc_meta, "Description": "Regional TACs corrected for partial volumes: the "
                "activity of each region's own tissue (tissue-compartment GTM)."}, needs_pvc=True),
        Output("pvc", "kinpar_files", "pet", "pet", "kinpar", {"pvc": "GTM"}, {**kinpar_meta, **pvc_meta},
               iterate=(("model", "model_names"),), needs_pvc=True),
        Output("pvc", "map_files", "pet", "pet", "mimap", {"space": "T1w", "pvc": "RBV"},
               {**map_meta, **pvc_meta, "SpatialReference": t1w_reference},
               iterate=(("model", "models"), ("meas", "measures")), needs_pvc="rbv"),
        Output("maps", "map_files", "pet", "pet", "mimap", {}, map_meta,
               iterate=(("model", "models"), ("meas", "measures"))),
        Output("maps", "map_files_t1w", "pet", "pet", "mimap", {"space": "T1w"},
               {**map_meta, "SpatialReference": t1w_reference},
               iterate=(("model", "models"), ("meas", "measures"))),
    ]
    if not has_svca_class_frames(metadata):  # no frame for the blood class: no class curves to write
        outputs = [o for o in outputs if (o.node, o.field) != ("svca", "class_table")]
    return outputs


def _ref_region_wants(output: Output, ref_region: str) -> bool:
    """Whether ``output`` is written with this ``--ref-region`` (``needs_ref``: a method, or "!method")."""
    if output.needs_ref is None:
        return True
    if output.needs_ref.startswith("!"):
        return ref_region != output.needs_ref[1:]
    return ref_region == output.needs_ref


def _classes_reference(classes_file: Path | str | None, settings: Any) -> str:
    """The SVCA class table for a sidecar: relative to the output directory when it lies inside it (the
    group-built table), else the path as given."""
    if not classes_file:
        return ""
    path = Path(classes_file)
    try:
        return path.resolve().relative_to(Path(settings.output_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def settings_reference(settings: Any) -> str:
    """Name of the reference region the settings ask for (cerebellum -> cerebellumgm, svca -> svca)."""
    ref = getattr(settings, "ref_region", "cerebellum") or "cerebellum"
    return REFERENCE_REGION if ref == "cerebellum" else ref


def init_participant_wf(run: Any, settings: Any, name: str | None = None) -> pe.Workflow:
    """Build the workflow for one PET run and its anatomy.

    Parameters
    ----------
    run : tspo_bids.bids.discovery.PetRun
        The PET run with its sidecar metadata, T1w and optional FLAIR.
    settings : tspo_bids.config.Settings
        Parsed options (output directory, models, threads, ...).
    name : str, optional
        Workflow name (default: ``<run label>_wf``).

    Returns
    -------
    nipype Workflow
        anat_wf -> pet_wf -> modelling_wf, with every derivative written by a
        DerivativesDataSink into ``settings.output_dir``.
    """
    name = name or f"{run.label.replace('-', '_')}_wf"
    # tracer preset (t*, SUVR window) of this run's sidecar, unless options override it
    timing = FrameTiming.from_bids(run.metadata)
    settings = settings.for_tracer(run.metadata.get("TracerName"), source=str(run.sidecar_file),
                                   frame_start_min=timing.start_min, frame_end_min=timing.end_min,
                                   warn=False)  # the command line's checks already warned
    workflow = pe.Workflow(name=name)
    omp = max(1, int(getattr(settings, "omp_nthreads", 1) or 1))
    metadata = dict(run.metadata)

    anat_wf = init_anat_wf(
        has_flair=run.flair_file is not None,
        lesion_mask=str(run.lesion_mask_file) if run.lesion_mask_file is not None else None,
        lesion_mask_space=run.lesion_mask_space or "T1w",
        lesion_min_volume_mm3=settings.lesion_min_volume_mm3,
        omp_nthreads=omp,
        random_seed=settings.random_seed if settings.random_seed else DEFAULT_RANDOM_SEED,
    )
    anat_wf.inputs.inputnode.t1w_file = str(run.t1w_file)
    if run.flair_file is not None:
        anat_wf.inputs.inputnode.flair_file = str(run.flair_file)
    pet_wf = init_pet_wf(metadata, omp_nthreads=omp)
    pet_wf.inputs.inputnode.pet_file = str(run.pet_file)
    svca_classes = classes_file_for(settings, run.tracer) if settings.ref_region == "svca" else None
    svca_wf = init_svca_wf(metadata, svca_classes)
    workflow.connect([
        (pet_wf, svca_wf, [("outputnode.pet_t1w", "inputnode.pet_t1w")]),
        (anat_wf, svca_wf, [("outputnode.brain_mask", "inputnode.brain_mask"),
                            ("outputnode.gm_prob", "inputnode.gm_prob"), ("outputnode.wm_prob", "inputnode.wm_prob"),
                            ("outputnode.atlas_labels", "inputnode.atlas_labels"),
                            ("outputnode.reference_mask", "inputnode.gm_class_mask"),
                            ("outputnode.mask_files", "inputnode.mask_files"),
                            ("outputnode.region_names", "inputnode.region_names")]),
    ])
    # with SVCA the regions carry the svca mask too, so the regional TACs hold the reference column
    regions_wf = svca_wf if svca_classes is not None else anat_wf
    modelling_wf = init_modelling_wf(
        metadata,
        reference_region=settings_reference(settings),
        models=[canonical_model_name(m) for m in settings.models],
        t_star_min=settings.t_star_min,
        suvr_window_min=settings.suvr_window_min,
    )
    workflow.connect([
        (anat_wf, pet_wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                           ("outputnode.brain_mask", "inputnode.brain_mask")]),
        (pet_wf, modelling_wf, [("outputnode.pet_t1w", "inputnode.pet_t1w")]),
        (regions_wf, modelling_wf, [("outputnode.mask_files", "inputnode.mask_files"),
                                    ("outputnode.region_names", "inputnode.region_names")]),
    ])

    sources = {"t1w": str(run.t1w_file), "pet": str(run.pet_file)}
    maps_wf = init_parametric_maps_wf(
        metadata,
        reference_region=settings_reference(settings),
        t_star_min=settings.t_star_min,
        suvr_window_min=settings.suvr_window_min,
    )
    workflow.connect([
        (pet_wf, maps_wf, [("outputnode.pet_mc", "inputnode.pet_mc"), ("outputnode.pet_ref", "inputnode.pet_ref"),
                           ("outputnode.pet_to_t1w_matrix", "inputnode.pet_to_t1w_matrix")]),
        (anat_wf, maps_wf, [("outputnode.brain_mask", "inputnode.brain_mask"),
                            ("outputnode.t1w_preproc", "inputnode.t1w_preproc")]),
        (modelling_wf, maps_wf, [("outputnode.tacs_file", "inputnode.tacs_file")]),
    ])
    lesion_stats = pe.Node(LesionStatistics(model="SRTM2"), name="lesion_statistics")
    workflow.connect([
        (anat_wf, lesion_stats, [("outputnode.lesion_labels", "lesion_labels"), ("outputnode.wm_prob", "wm_prob")]),
        (maps_wf, lesion_stats, [("outputnode.map_files_t1w", "map_files"), ("outputnode.models", "models"),
                                 ("outputnode.measures", "measures")]),
    ])
    producers = {"anat": anat_wf, "pet": pet_wf, "modelling": modelling_wf, "maps": maps_wf,
                 "lesions": lesion_stats, "svca": svca_wf}
    if settings.pvc != "none":
        pvc_wf = init_pvc_wf(
            metadata, method=settings.pvc, fwhm_mm=settings.pvc_psf_mm,
            reference_region=settings_reference(settings),
            models=[canonical_model_name(m) for m in settings.models],
            t_star_min=settings.t_star_min, suvr_window_min=settings.suvr_window_min,
        )
        workflow.connect([
            (pet_wf, pvc_wf, [("outputnode.pet_t1w", "inputnode.pet_t1w"), ("outputnode.pet_ref", "inputnode.pet_ref"),
                              ("outputnode.pet_to_t1w_matrix", "inputnode.pet_to_t1w_matrix")]),
            (anat_wf, pvc_wf, [("outputnode.gm_prob", "inputnode.gm_prob"), ("outputnode.wm_prob", "inputnode.wm_prob"),
                               ("outputnode.csf_prob", "inputnode.csf_prob"),
                               ("outputnode.brain_mask", "inputnode.brain_mask"),
                               ("outputnode.atlas_labels", "inputnode.atlas_labels"),
                               ("outputnode.lesion_labels", "inputnode.lesion_labels")]),
            (regions_wf, pvc_wf, [("outputnode.mask_files", "inputnode.mask_files"),
                                  ("outputnode.region_names", "inputnode.region_names")]),
        ])
        producers["pvc"] = pvc_wf
        if settings.pvc == "rbv":
            lesion_stats_pvc = pe.Node(LesionStatistics(model="SRTM2"), name="lesion_statistics_pvc")
            workflow.connect([
                (anat_wf, lesion_stats_pvc, [("outputnode.lesion_labels", "lesion_labels"),
                                             ("outputnode.wm_prob", "wm_prob")]),
                (pvc_wf, lesion_stats_pvc, [("outputnode.map_files", "map_files"), ("outputnode.models", "models"),
                                            ("outputnode.measures", "measures")]),
            ])
            producers["lesions_pvc"] = lesion_stats_pvc
    t1w_reference = "bids::" + Path(run.t1w_file).relative_to(settings.bids_dir).as_posix()
    if not has_svca_class_frames(metadata):
        LOGGER.info("%s: no frame ends by %g min, so this session gives no SVCA class curves (the blood class "
                    "needs early frames)", run.label, BLOOD_WINDOW_END_MIN)
    for output in _outputs(metadata, settings, t1w_reference, svca_classes):
        if output.needs_flair and run.flair_file is None:
            continue
        if output.needs_pvc and (settings.pvc == "none" or (output.needs_pvc == "rbv" and settings.pvc != "rbv")):
            continue
        if not _ref_region_wants(output, settings.ref_region):
            continue
        sink_inputs = dict(
            base_directory=str(settings.output_dir),
            source_file=sources[output.source],
            datatype=output.datatype,
            suffix=output.suffix,
            meta_dict=output.meta,
            **output.entities,
        )
        sink_name = f"ds_{output.node}_{output.field}"
        k2prime_meta = output.node == "maps"  # the sidecar gets this run's k2', known after the fits
        if k2prime_meta:
            del sink_inputs["meta_dict"]
        if output.iterate:
            iterfield = ["in_file"] + [entity for entity, _ in output.iterate]
            sink = pe.MapNode(DerivativesDataSink(**sink_inputs), iterfield=iterfield,
                              name=sink_name, run_without_submitting=True)
        else:
            sink = pe.Node(DerivativesDataSink(**sink_inputs), name=sink_name, run_without_submitting=True)
        producer = producers[output.node]
        prefix = "" if isinstance(producer, pe.Node) else "outputnode."
        workflow.connect(producer, prefix + output.field, sink, "in_file")
        if k2prime_meta:
            meta = pe.Node(K2PrimeMeta(meta=output.meta), name=f"meta_{output.node}_{output.field}",
                           run_without_submitting=True)
            workflow.connect([(producer, meta, [(prefix + "k2prime", "k2prime")]), (meta, sink, [("meta", "meta_dict")])])
        for entity, source_field in output.iterate:
            workflow.connect(producer, prefix + source_field, sink, entity)
    return workflow
