"""Run settings and the tracer preset table.

Everything the command line parses ends up in one frozen :class:`Settings` object that
``cli/run.py`` builds once and passes down to discovery, workflows and group level.
There is no process-wide mutable configuration.

The tracer presets (:data:`TRACER_PRESETS`) are the single source of truth for
tracer-specific defaults (SUVR window, Logan t*, whether genotype matters); the
command-line choices of ``--tracer`` come from this table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tspo_bids.errors import InputError

_LOGGER = logging.getLogger("tspo_bids.config")

#: Where the source code lives (written to ``GeneratedBy[].CodeURL``).
CODE_URL = "https://github.com/tspo-bids/tspo-bids"

#: Models fitted when ``--models`` is not given (names of ``tspo_bids.pet.models.MODELS``,
#: the one table of models; the command line takes its choices from there).
DEFAULT_MODELS: tuple[str, ...] = ("SRTM",)

#: Reference-region methods (``--ref-region``): atlas cerebellar grey matter or
#: supervised cluster analysis (SVCA4, kinetic classes from healthy controls).
REF_REGION_CHOICES: tuple[str, ...] = ("cerebellum", "svca")

#: Lesions smaller than this are dropped (mm^3; methods.md section 4).
DEFAULT_LESION_MIN_VOLUME_MM3 = 27.0

#: Lesion phenotypes (methods.md section 4; Polvinen et al. 2023): participants.tsv group of the
#: healthy controls, percentile of their NAWM voxel DVRs above which a voxel is "active", active-voxel
#: fraction above which a core or rim is active [verify], and the patient marker's cut-offs.
DEFAULT_CONTROL_GROUP = "HC"

#: Partial-volume correction methods (``--pvc``).
PVC_CHOICES: tuple[str, ...] = ("none", "gtm", "rbv")
DEFAULT_ACTIVE_PERCENTILE = 95.0
DEFAULT_ACTIVE_FRACTION = 0.5
DEFAULT_RIM_ACTIVE_MIN = 0.10
DEFAULT_INACTIVE_MAX = 0.50


class ReadOnlyDict(dict):
    """A dict that refuses changes but still pickles and deep-copies (Nipype copies node inputs;
    ``MappingProxyType`` cannot be pickled). Nested dicts are made read-only too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        content = dict(*args, **kwargs)
        super().__init__({k: ReadOnlyDict(v) if isinstance(v, dict) else v for k, v in content.items()})

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("settings are read-only: build new Settings with dataclasses.replace")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return ReadOnlyDict, (dict(self),)

    def __copy__(self) -> ReadOnlyDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ReadOnlyDict:
        return self  # immutable all the way down (values are plain data)


@dataclass(frozen=True)
class TracerPreset:
    """Tracer-specific defaults.

    Attributes
    ----------
    key : str
        Short lowercase name used on the command line (``--tracer``).
    display_name : str
        Conventional name, e.g. ``"[11C]-(R)-PK11195"``.
    radionuclide : str
        BIDS ``TracerRadionuclide`` value expected ("C11", "F18").
    suvr_window_min : tuple of float
        Start and end of the SUVR averaging window, minutes from injection.
    t_star_min : float
        Default Logan t* (minutes from injection).
    needs_genotype : bool
        True for second-generation tracers whose binding depends on rs6971
        (LAB participants are excluded, HAB/MAB is a covariate).
    aliases : tuple of str
        Extra normalised spellings of ``TracerName`` that map to this preset.
    """

    key: str
    display_name: str
    radionuclide: str
    suvr_window_min: tuple[float, float]
    t_star_min: float
    needs_genotype: bool
    aliases: tuple[str, ...] = ()


# SUVR windows from methods.md section 2 (PBR28/GE-180/PBR06 windows marked [verify] there);
# t* 20 min for 60-min PK11195 scans, 30 min for the 90-min protocols of the others [verify].
_PRESETS: tuple[TracerPreset, ...] = (
    TracerPreset("pk11195", "[11C]-(R)-PK11195", "C11", (40.0, 60.0), 20.0, False,
                 aliases=("rpk11195", "pk")),
    TracerPreset("pbr28", "[11C]PBR28", "C11", (60.0, 90.0), 30.0, True),
    TracerPreset("ge180", "[18F]GE-180", "F18", (60.0, 90.0), 30.0, True,
                 aliases=("flutriciclamide",)),
    TracerPreset("pbr06", "[18F]PBR06", "F18", (60.0, 90.0), 30.0, True,
                 aliases=("fepbr06",)),
)

#: Preset key -> preset (read-only).
TRACER_PRESETS: Mapping[str, TracerPreset] = MappingProxyType({p.key: p for p in _PRESETS})

_ALIASES: dict[str, str] = {}
for _preset in _PRESETS:
    for _alias in (_preset.key, *_preset.aliases):
        _ALIASES[_alias] = _preset.key


def normalise_tracer_name(tracer_name: str) -> str:
    """Reduce a ``TracerName`` to lowercase letters and digits without isotope or stereo prefix.

    ``"[11C]-(R)-PK11195"``, ``"[11C]PK11195"``, ``"PK-11195"`` all give ``"pk11195"``;
    ``"(R)-[11C]PK11195"`` gives the same.
    """
    text = re.sub(r"\[\s*\d+\s*[a-zA-Z]{1,2}\s*\]", "", tracer_name)  # [11C], [18F]
    text = re.sub(r"\(\s*[RrSs+-]\s*\)", "", text)  # (R), (S), (+), (-)
    text = re.sub(r"^\s*(11C|C11|18F|F18)\b", "", text.strip())  # "11C-PBR28"
    return re.sub(r"[^a-z0-9]", "", text.lower())


def tracer_key_from_name(tracer_name: str) -> str | None:
    """Map a sidecar ``TracerName`` to a preset key, or None if unknown."""
    return _ALIASES.get(normalise_tracer_name(tracer_name))


def resolve_tracer(tracer_name: str | None, override: str | None, *, source: str) -> TracerPreset:
    """Choose the tracer preset for one PET run.

    Parameters
    ----------
    tracer_name : str or None
        The sidecar's ``TracerName``.
    override : str or None
        ``--tracer`` (a preset key); wins over the sidecar.
    source : str
        File the ``TracerName`` came from, for the error message.

    Raises
    ------
    InputError
        If neither gives a known tracer.
    """
    if override is not None:
        if override not in TRACER_PRESETS:
            raise InputError(f"--tracer {override}: unknown tracer; choose one of {', '.join(TRACER_PRESETS)}")
        return TRACER_PRESETS[override]
    if not tracer_name:
        raise InputError(f"{source}: TracerName missing; add it or pass --tracer {{{','.join(TRACER_PRESETS)}}}")
    key = tracer_key_from_name(tracer_name)
    if key is None:
        raise InputError(
            f"{source}: TracerName {tracer_name!r} is not a known TSPO tracer; "
            f"pass --tracer {{{','.join(TRACER_PRESETS)}}} to choose the preset"
        )
    return TRACER_PRESETS[key]


@dataclass(frozen=True)
class Settings:
    """Everything one ``tspo-bids`` invocation was asked to do (immutable).

    Paths are absolute. Times are minutes from injection, volumes mm^3, memory GB.

    Attributes
    ----------
    bids_dir, output_dir : Path
        Input BIDS dataset and derivatives output directory.
    analysis_level : str
        "participant" or "group".
    work_dir : Path
        Nipype working directory (default ``<current directory>/work``, as in fMRIPrep).
        Re-running with the same work directory resumes.
    participant_label, session_label, tracer_label : tuple of str or None
        Selection, without ``sub-``/``ses-``/``trc-`` prefixes; None selects all.
    bids_filter : dict or None
        Parsed ``--bids-filter-file``: keys "pet", "t1w", "flair" -> pybids entity filters.
    derivatives : Mapping[str, Path]
        ``-d NAME=PATH`` derivative datasets (e.g. "lesions").
    skip_bids_validation : bool
        Do not run the BIDS validator on the input.
    nprocs, omp_nthreads : int
        Parallel processes for Nipype, threads per process (ANTs/numpy).
    mem_gb : float or None
        Memory available to the workflow (GB), None = no limit given.
    plugin : Mapping[str, Any]
        ``{"plugin": name, "plugin_args": {...}}`` for ``Workflow.run``.
    stop_on_first_crash : bool
        Stop the workflow at the first failed node.
    tracer : str or None
        Tracer preset key forced with ``--tracer``; None = from each sidecar's ``TracerName``.
    ref_region : str
        Reference-region method (:data:`REF_REGION_CHOICES`).
    svca_classes : Path or None
        ``--svca-classes``: SVCA class table for ``ref_region == "svca"``; None = the group level's
        ``OUTPUT_DIR/group/trc-<label>_desc-svca_classes.tsv``.
    build_svca_classes : bool
        Group level: average the healthy controls' SVCA class curves into class tables.
    models : tuple of str
        Kinetic models to fit (names as in ``tspo_bids.pet.models.MODELS``, e.g. "SRTM").
    t_star_min : float or None
        Logan t* (minutes); None = tracer preset.
    suvr_window_min : tuple of float or None
        SUVR window start/end (minutes from injection); None = tracer preset.
    control_group, active_percentile, active_fraction, rim_active_min, inactive_max
        Lesion-phenotype options of the group level (see the DEFAULT_* constants).
    pvc : str
        Partial-volume correction: "none", "gtm" or "rbv".
    pvc_psf_mm : tuple of float or None
        PET point-spread function FWHM (x, y, z), mm; set exactly when ``pvc`` is not "none".
    lesion_min_volume_mm3 : float
        Lesions smaller than this are dropped.
    random_seed : int or None
        Seed for stochastic steps (registration sampling, permutations).
    verbose : int
        0 = warnings and progress, 1 = info, 2+ = debug.
    command_line : str
        The command as typed (for sidecars' ``CommandLine``).
    """

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    work_dir: Path
    participant_label: tuple[str, ...] | None = None
    session_label: tuple[str, ...] | None = None
    tracer_label: tuple[str, ...] | None = None
    bids_filter: Mapping[str, Any] | None = None
    derivatives: Mapping[str, Path] = field(default_factory=ReadOnlyDict)
    skip_bids_validation: bool = False
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    plugin: Mapping[str, Any] = field(
        default_factory=lambda: ReadOnlyDict({"plugin": "Linear", "plugin_args": {}})
    )
    stop_on_first_crash: bool = False
    tracer: str | None = None
    ref_region: str = "cerebellum"
    svca_classes: Path | None = None
    build_svca_classes: bool = False
    models: tuple[str, ...] = DEFAULT_MODELS
    t_star_min: float | None = None
    suvr_window_min: tuple[float, float] | None = None
    lesion_min_volume_mm3: float = DEFAULT_LESION_MIN_VOLUME_MM3
    control_group: str = DEFAULT_CONTROL_GROUP
    active_percentile: float = DEFAULT_ACTIVE_PERCENTILE
    active_fraction: float = DEFAULT_ACTIVE_FRACTION
    rim_active_min: float = DEFAULT_RIM_ACTIVE_MIN
    inactive_max: float = DEFAULT_INACTIVE_MAX
    pvc: str = "none"
    pvc_psf_mm: tuple[float, float, float] | None = None
    random_seed: int | None = None
    verbose: int = 0
    command_line: str = ""

    def for_tracer(self, tracer_name: str | None, *, source: str, frame_start_min: Any = None,
                   frame_end_min: Any = None, warn: bool = True) -> Settings:
        """These settings with ``tracer``, ``t_star_min`` and ``suvr_window_min`` filled for one run.

        Explicit options win; otherwise the preset of ``--tracer`` or of the sidecar's
        ``TracerName`` fills them. An unknown tracer is an error only when a requested
        model needs a preset value ("Logan" without ``--t-star``, "SUVR" without
        ``--suvr-window``); otherwise the settings come back unchanged.

        With the run's frames (``frame_start_min``, ``frame_end_min``: minutes from injection) the
        SUVR window and t* are also checked against the scan: outside it, a value the user asked
        for (the option, or a model needing it) is an error; a preset value the user did not ask
        for is dropped (no SUVR or Logan map), logged when ``warn``.

        Raises
        ------
        InputError
            Naming ``source`` (the sidecar) and the option that would fix it.
        """
        try:
            preset = self.tracer_preset(tracer_name, source=source)
        except InputError:
            needs_t_star = "Logan" in self.models and self.t_star_min is None
            needs_window = "SUVR" in self.models and self.suvr_window_min is None
            if needs_t_star or needs_window:
                raise
            tuned = self
        else:
            tuned = replace(self, tracer=preset.key, t_star_min=self.t_star_for(preset),
                            suvr_window_min=self.suvr_window_for(preset))
        if frame_start_min is None or frame_end_min is None:
            return tuned
        return tuned._within_scan(float(min(frame_start_min)), float(max(frame_start_min)), float(max(frame_end_min)),
                                  source=source, explicit_window=self.suvr_window_min is not None,
                                  explicit_t_star=self.t_star_min is not None, warn=warn)

    def _within_scan(self, first_start: float, last_start: float, scan_end: float, *, source: str,
                     explicit_window: bool, explicit_t_star: bool, warn: bool) -> Settings:
        """Check (or drop) the SUVR window and t* against a scan spanning ``first_start``-``scan_end`` minutes,
        by the models' own rules (:func:`~tspo_bids.kinetics.suvr.window_outside_scan`,
        :func:`~tspo_bids.kinetics.linear.t_star_outside_scan`)."""
        from tspo_bids.kinetics.linear import t_star_outside_scan
        from tspo_bids.kinetics.suvr import window_outside_scan

        outside = []  # (field, what, where, asked by its option, model needing it, option)
        window = self.suvr_window_min
        where = window_outside_scan(window, first_start, scan_end) if window is not None else None
        if where:
            outside.append(("suvr_window_min", f"the SUVR window {window[0]:g}-{window[1]:g} min", where,
                            explicit_window, "SUVR", "--suvr-window START END"))
        t_star = self.t_star_min
        where = t_star_outside_scan(t_star, last_start) if t_star is not None else None
        if where:
            outside.append(("t_star_min", f"t* = {t_star:g} min", where, explicit_t_star, "Logan", "--t-star MIN"))
        updates: dict[str, Any] = {}
        for field_name, what, where, explicit, model, option in outside:
            if explicit or model in self.models:
                origin = option.split()[0] if explicit else f"the {self.tracer} preset"
                raise InputError(f"{source}: {what} ({origin}) {where}; give {option} inside the scan")
            if warn:
                _LOGGER.info("%s: %s of the %s preset %s: no %s map (give %s for one)", source, what, self.tracer,
                             where, model, option)
            updates[field_name] = None
        return replace(self, **updates) if updates else self

    def tracer_preset(self, tracer_name: str | None, *, source: str) -> TracerPreset:
        """Preset for a run whose sidecar says ``tracer_name`` (``--tracer`` wins)."""
        return resolve_tracer(tracer_name, self.tracer, source=source)

    def suvr_window_for(self, preset: TracerPreset) -> tuple[float, float]:
        """SUVR window in minutes: ``--suvr-window`` if given, else the preset's."""
        return self.suvr_window_min if self.suvr_window_min is not None else preset.suvr_window_min

    def t_star_for(self, preset: TracerPreset) -> float:
        """Logan t* in minutes: ``--t-star`` if given, else the preset's."""
        return self.t_star_min if self.t_star_min is not None else preset.t_star_min
