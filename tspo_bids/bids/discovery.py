"""Find the PET runs of a BIDS dataset, with their sidecars and anatomy; read participants.tsv.

Discovery checks the whole selection before anything runs and reports every problem at
once: one :class:`~tspo_bids.errors.InputError` whose message lists each problem as
``<file>: <problem>``, joined with ``"; "`` so the command line prints one line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import pandas as pd

from tspo_bids.bids.images import image_problems
from tspo_bids.bids.jsonio import read_json
from tspo_bids.errors import InputError

LOGGER = logging.getLogger("tspo_bids.bids")

_IMAGE_EXTENSIONS = [".nii.gz", ".nii"]
#: Keys accepted in a --bids-filter-file, each the pybids query of one input kind.
FILTER_KEYS: tuple[str, ...] = ("pet", "t1w", "flair")
#: Fields tspo-bids needs besides the timing ones checked by kinetics.bids_timing_problems.
REQUIRED_FOR_MODELLING: tuple[str, ...] = ("TracerName", "TracerRadionuclide", "Units")
#: Fields BIDS requires of PET sidecars that tspo-bids does not use: only warned about.
BIDS_REQUIRED_NOT_USED: tuple[str, ...] = (
    "Manufacturer", "ManufacturersModelName", "InjectedRadioactivity", "InjectedRadioactivityUnits",
    "InjectedMass", "InjectedMassUnits", "SpecificRadioactivity", "SpecificRadioactivityUnits",
    "ModeOfAdministration", "TimeZero", "ScanStart", "AcquisitionMode", "ReconMethodName",
    "ReconMethodParameterLabels", "ReconFilterType", "AttenuationCorrection",
)
_LIST_LIMIT = 10
_LABEL = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class PetRun:
    """One PET acquisition and the anatomy that goes with it.

    Attributes
    ----------
    subject : str
        Participant label without ``sub-``.
    session, tracer, reconstruction, run : str or None
        ``ses-``, ``trc-``, ``rec-``, ``run-`` labels of the PET file (None when absent).
    pet_file : Path
        The 4D PET image.
    sidecar_file : Path
        The most specific ``_pet.json`` that applies to it.
    metadata : dict
        Sidecar content after the BIDS inheritance principle (the most specific file wins).
    t1w_file : Path
        The T1w of the same subject and session (or the subject's only T1w).
    flair_file : Path or None
        The FLAIR of the same subject and session, if any.
    lesion_mask_file : Path or None
        The lesion mask from the ``-d lesions=PATH`` derivative dataset, if given and found.
    lesion_mask_space : str or None
        Its ``space-`` label: "T1w" or "FLAIR".
    """

    subject: str
    session: str | None
    tracer: str | None
    reconstruction: str | None
    run: str | None
    pet_file: Path
    sidecar_file: Path
    metadata: Mapping[str, Any]
    t1w_file: Path
    flair_file: Path | None = None
    lesion_mask_file: Path | None = None
    lesion_mask_space: str | None = None

    @property
    def entities(self) -> dict[str, str]:
        """The set entities as ``{"sub": ..., "ses": ..., "trc": ..., "rec": ..., "run": ...}``."""
        pairs = (("sub", self.subject), ("ses", self.session), ("trc", self.tracer),
                 ("rec", self.reconstruction), ("run", self.run))
        return {key: value for key, value in pairs if value is not None}

    @property
    def label(self) -> str:
        """Unique short name, e.g. ``"sub-01_ses-baseline"`` (``trc``/``rec``/``run`` added when set)."""
        return "_".join(f"{key}-{value}" for key, value in self.entities.items())


# ----------------------------------------------------------------------------- helpers


def _problem_message(problems: Sequence[str]) -> str:
    return "; ".join(problems)


def check_bids_root(bids_dir: Path) -> None:
    """Raise InputError unless ``bids_dir`` is a folder with a dataset_description.json."""
    if not bids_dir.is_dir():
        raise InputError(f"{bids_dir}: BIDS_DIR does not exist or is not a directory")
    if not (bids_dir / "dataset_description.json").is_file():
        raise InputError(
            f"{bids_dir}: not a BIDS dataset (no dataset_description.json); point BIDS_DIR at the dataset root"
        )


def _strip(label: str, prefix: str) -> str:
    return label[len(prefix):] if label.startswith(prefix) else label


def _labels(values: Sequence[str] | None, prefix: str) -> list[str] | None:
    if not values:
        return None
    return [_strip(str(v), prefix) for v in values]


def dataset_subjects(bids_dir: Path) -> list[str]:
    """Participant labels of the ``sub-<label>`` folders of a dataset."""
    return sorted(p.name[4:] for p in Path(bids_dir).glob("sub-*") if p.is_dir() and _LABEL.match(p.name[4:]))


def _layout(bids_dir: Path, extra_ignore: Sequence[Path] = (), subjects: Sequence[str] | None = None):
    """A pybids layout of the raw data only (no validation, no metadata index, in memory).

    With ``subjects``, other participants' folders are not indexed: a one-participant job
    on a large dataset stays fast.
    """
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    ignore: list[Any] = [re.compile(r"^/(code|models|sourcedata|stimuli|derivatives)"), re.compile(r"/\.")]
    if subjects:
        chosen = "|".join(re.escape(label) for label in subjects)
        ignore.append(re.compile(rf"^/sub-(?!(?:{chosen})(?:/|$))"))
    root = bids_dir.resolve()
    for path in extra_ignore:
        path = Path(path).resolve()
        if path.is_relative_to(root) and path != root:
            ignore.append(re.compile("^/" + re.escape(str(path.relative_to(root))) + "(/|$)"))
    indexer = BIDSLayoutIndexer(validate=False, index_metadata=False, ignore=ignore)
    return BIDSLayout(str(root), validate=False, derivatives=False, indexer=indexer, database_path=None)


def _bids_filter(bids_filter: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    filters = {key: {} for key in FILTER_KEYS}
    if not bids_filter:
        return filters
    unknown = sorted(set(bids_filter) - set(FILTER_KEYS))
    if unknown:
        raise InputError(
            f"--bids-filter-file: unknown key(s) {', '.join(unknown)}; use {', '.join(FILTER_KEYS)}"
        )
    for key, query in bids_filter.items():
        if not isinstance(query, Mapping):
            raise InputError(f"--bids-filter-file: {key!r} must map entity names to values")
        filters[key] = _pybids_query(dict(query))
    return filters


def _pybids_query(query: dict[str, Any]) -> dict[str, Any]:
    """Translate JSON filter values: null -> must be absent, "*" -> must be present."""
    from bids.layout import Query

    translated: dict[str, Any] = {}
    for entity, value in query.items():
        if value is None:
            translated[entity] = Query.NONE
        elif value == "*":
            translated[entity] = Query.ANY
        else:
            translated[entity] = value
    return translated


def read_sidecar_metadata(pet_file: Path, bids_dir: Path) -> tuple[Path | None, dict[str, Any], list[str]]:
    """Collect a PET file's JSON metadata by the BIDS inheritance principle.

    Every ``*_pet.json`` between the dataset root and the file's folder whose entities are
    a subset of the file's applies; deeper and more specific files win.

    Returns
    -------
    sidecar_file, metadata, problems
        The most specific sidecar (None if there is none), the merged metadata and any
        problems (``<file>: <problem>``).
    """
    entities = _filename_entities(pet_file.name)
    root = bids_dir.resolve()
    folders = [root]
    relative = pet_file.resolve().parent.relative_to(root)
    for part in relative.parts:
        folders.append(folders[-1] / part)
    candidates: list[tuple[int, int, Path]] = []
    for depth, folder in enumerate(folders):
        for path in sorted([*folder.glob("*_pet.json"), *folder.glob("pet.json")]):
            their = _filename_entities(path.name)
            if all(entities.get(key) == value for key, value in their.items()):
                candidates.append((depth, len(their), path))
    candidates.sort()
    metadata: dict[str, Any] = {}
    problems: list[str] = []
    for _, _, path in candidates:
        try:
            content = read_json(path)
        except (OSError, ValueError) as error:
            problems.append(f"{path}: not valid JSON ({error})")
            continue
        if not isinstance(content, dict):
            problems.append(f"{path}: must hold a JSON object")
            continue
        metadata.update(content)
    sidecar = candidates[-1][2] if candidates else None
    return sidecar, metadata, problems


def _filename_entities(name: str) -> dict[str, str]:
    stem = name.split(".", 1)[0]
    parts = stem.split("_")[:-1]  # drop the suffix
    return dict(part.split("-", 1) for part in parts if "-" in part)


def read_n_volumes(image_file: Path) -> int:
    """Number of volumes (4th dimension; 1 for a 3D image) from the NIfTI header, without loading data."""
    shape = nib.load(str(image_file)).shape
    return int(shape[3]) if len(shape) >= 4 else 1


#: Fewest frames the participant level can model: SRTM's three parameters (R1, k2, BPND), voxelwise too.
MIN_DYNAMIC_FRAMES = 3


def _warn_tracer_mismatch(label: str | None, tracer_name: Any, pet_file: Path) -> None:
    """Log when the file name's ``trc-`` label and the sidecar's ``TracerName`` name different known tracers."""
    from tspo_bids.config import tracer_key_from_name

    if not label or not isinstance(tracer_name, str):
        return
    from_label, from_sidecar = tracer_key_from_name(label), tracer_key_from_name(tracer_name)
    if from_label and from_sidecar and from_label != from_sidecar:
        LOGGER.warning("%s: trc-%s in the file name but TracerName %r in the sidecar; the sidecar's tracer (%s) sets "
                       "the presets (t*, SUVR window, genotype rules)", pet_file.name, label, tracer_name,
                       from_sidecar)


def sidecar_problems(metadata: Mapping[str, Any], n_volumes: int | None) -> tuple[list[str], list[str]]:
    """Check a PET sidecar: returns (errors, warnings), each without the file name.

    Errors: the timing fields modelling needs (``kinetics.bids_timing_problems``: frame
    times, durations, one per volume, increasing, decay fields) and
    :data:`REQUIRED_FOR_MODELLING`. Warnings: other BIDS-required fields that are missing.
    """
    from tspo_bids.kinetics import bids_timing_problems

    errors = list(bids_timing_problems(metadata, n_volumes))
    for key in REQUIRED_FOR_MODELLING:
        if metadata.get(key) in (None, ""):
            if not any(key in problem for problem in errors):
                errors.append(f"{key} missing")
    warnings = [f"{key} missing (required by BIDS)" for key in BIDS_REQUIRED_NOT_USED if key not in metadata]
    return errors, warnings


def _anat_images(layout: Any, suffix: str, subjects: Sequence[str] | None,
                 query: Mapping[str, Any]) -> dict[str, list[tuple[str | None, Path]]]:
    """Every ``anat/*_<suffix>.nii[.gz]`` passing the filter: subject -> [(session, path)] (one query)."""
    full: dict[str, Any] = dict(suffix=suffix, datatype="anat", extension=_IMAGE_EXTENSIONS)
    if subjects:
        full["subject"] = list(subjects)
    full.update(query)
    images: dict[str, list[tuple[str | None, Path]]] = {}
    for bids_file in layout.get(**full):
        entities = bids_file.get_entities()
        images.setdefault(entities["subject"], []).append((entities.get("session"), Path(bids_file.path)))
    return images


def _anat_for(images: Mapping[str, list[tuple[str | None, Path]]], subject: str, session: str | None,
              suffix: str, required: bool, problems: list[str], pet_file: Path) -> Path | None:
    """The subject/session's single image of ``suffix`` (T1w, FLAIR), else the subject's only one."""
    candidates = images.get(subject, [])
    same = sorted(path for their_session, path in candidates if their_session == session)
    if len(same) == 1:
        return same[0]
    where = f"sub-{subject}" + (f"/ses-{session}" if session else "") + "/anat"
    if len(same) > 1:
        problems.append(
            f"{pet_file}: {len(same)} {suffix} images in {where} ({', '.join(p.name for p in same)}); "
            f"choose one with --bids-filter-file {{\"{suffix.lower()}\": {{...}}}}"
        )
        return None
    others = sorted(path for _, path in candidates)
    if len(others) == 1:
        LOGGER.info("%s: no %s in %s; using the subject's only %s %s", pet_file.name, suffix, where, suffix,
                    others[0])
        return others[0]
    if required:
        hint = f" ({len(others)} in other sessions: select one with --bids-filter-file)" if others else ""
        problems.append(f"{pet_file}: no {suffix} image in {where}{hint}; tspo-bids needs one per PET session")
    elif others:
        LOGGER.warning("%s: no %s in %s and %d elsewhere: running without FLAIR", pet_file.name, suffix, where,
                       len(others))
    return None


#: ``-d NAME=PATH`` derivative datasets discovery understands.
KNOWN_DERIVATIVES: tuple[str, ...] = ("lesions",)
LESION_MASK_SPACES: tuple[str, ...] = ("T1w", "FLAIR")


def find_lesion_mask(lesions_dir: Path, subject: str, session: str | None,
                     problems: list[str]) -> tuple[Path | None, str | None]:
    """The lesion mask of one subject/session in a ``-d lesions=PATH`` dataset.

    Layout (no settled BIDS convention; this is the one tspo-bids documents):
    ``sub-<l>[/ses-<l>]/anat/sub-<l>[_ses-<l>]_space-<T1w|FLAIR>_label-lesion_mask.nii[.gz]``.
    A subject-level mask (no session) serves every session when there is no session-level one.

    Returns
    -------
    (path, space) or (None, None)
        ``problems`` gets an entry when both a T1w- and a FLAIR-space mask exist.
    """
    candidates = []
    levels = [(lesions_dir / f"sub-{subject}" / f"ses-{session}" / "anat", f"sub-{subject}_ses-{session}")] \
        if session else []
    levels.append((lesions_dir / f"sub-{subject}" / "anat", f"sub-{subject}"))
    for folder, prefix in levels:
        for space in LESION_MASK_SPACES:
            for extension in _IMAGE_EXTENSIONS:
                path = folder / f"{prefix}_space-{space}_label-lesion_mask{extension}"
                if path.is_file() or path.is_symlink():  # a broken link is found, then reported as such
                    candidates.append((path, space))
        if candidates:
            break
    if len(candidates) > 1:
        problems.append(f"{candidates[0][0].parent}: several lesion masks for sub-{subject}"
                        + (f"_ses-{session}" if session else "") + f" ({', '.join(p.name for p, _ in candidates)}); "
                        "keep one")
        return None, None
    return candidates[0] if candidates else (None, None)


def _dataset_sessions(bids_dir: Path, subject: str) -> set[str]:
    """Session labels of the ``ses-<label>`` folders of one participant."""
    return {p.name[4:] for p in (Path(bids_dir) / f"sub-{subject}").glob("ses-*") if p.is_dir()}


def unmatched_lesion_masks(lesions_dir: Path, bids_dir: Path) -> list[str]:
    """One-line messages for the lesion masks of a ``-d lesions=PATH`` dataset that no run can use.

    Scans every ``*label-lesion*_mask.nii[.gz]`` of ``lesions_dir`` (its root and ``sub-*`` folders)
    and reports, once per file, a mask whose participant is not in ``bids_dir`` (no
    ``sub-<label>`` folder), whose session is not in that participant's data (no
    ``ses-<label>`` folder), or whose name or folder does not follow the layout
    :func:`find_lesion_mask` reads (such masks are ignored). Participants present in the
    dataset but not selected for this run are not reported.

    Parameters
    ----------
    lesions_dir : Path
        Root of the lesion-mask derivative dataset.
    bids_dir : Path
        Root of the BIDS dataset.

    Returns
    -------
    list of str
        ``"<file>: <problem>; ignored"`` messages, sorted by file.
    """
    lesions_dir = Path(lesions_dir)
    subjects = set(dataset_subjects(bids_dir))
    pattern = "*label-lesion*_mask.nii*"
    masks = sorted({path for folders in ("", "sub-*/", "sub-*/anat/", "sub-*/ses-*/", "sub-*/ses-*/anat/")
                    for path in lesions_dir.glob(folders + pattern)
                    if path.is_file() and any(path.name.endswith(e) for e in _IMAGE_EXTENSIONS)})
    messages: list[str] = []
    for path in masks:
        folders = path.relative_to(lesions_dir).parts[:-1]
        named = _filename_entities(path.name)
        subject = folders[0][4:] if folders else named.get("sub")
        session = folders[1][4:] if len(folders) > 1 and folders[1].startswith("ses-") else named.get("ses")
        if subject is None:
            messages.append(f"{path}: lesion mask outside any sub-<label> folder and without a sub- entity; "
                            "ignored")
            continue
        participant = f"sub-{subject}"
        if subject not in subjects:
            messages.append(f"{path}: lesion mask for {participant}, but the BIDS dataset {bids_dir} has no such "
                            "participant; ignored")
            continue
        if session is not None and session not in _dataset_sessions(bids_dir, subject):
            messages.append(f"{path}: lesion mask for {participant} session ses-{session}, but the BIDS dataset "
                            f"{bids_dir} has no such session for {participant}; ignored")
            continue
        prefix = participant + (f"_ses-{session}" if session else "")
        folder = Path(participant, *([f"ses-{session}"] if session else []), "anat")
        names = {f"{prefix}_space-{space}_label-lesion_mask{extension}"
                 for space in LESION_MASK_SPACES for extension in _IMAGE_EXTENSIONS}
        if Path(*folders) != folder or path.name not in names:
            messages.append(f"{path}: not where or as tspo-bids reads lesion masks (expected "
                            f"{folder}/{prefix}_space-<T1w|FLAIR>_label-lesion_mask.nii.gz in {lesions_dir}); "
                            "ignored")
    return messages


# ----------------------------------------------------------------------------- discovery


def discover_pet_runs(
    bids_dir: Path,
    participant_label: Sequence[str] | None = None,
    session_label: Sequence[str] | None = None,
    tracer_label: Sequence[str] | None = None,
    bids_filter: Mapping[str, Any] | None = None,
    ignore: Sequence[Path] = (),
    derivatives: Mapping[str, Path] | None = None,
) -> list[PetRun]:
    """Every selected PET run with its sidecar, T1w and FLAIR, after checking them all.

    Parameters
    ----------
    bids_dir : Path
        Root of the BIDS dataset.
    participant_label, session_label, tracer_label : sequence of str, optional
        Selection (``sub-``/``ses-``/``trc-`` prefixes are stripped); None = all.
    bids_filter : mapping, optional
        ``{"pet"|"t1w"|"flair": {entity: value}}`` extra pybids filters (null = entity
        absent, "*" = any value), as in fMRIPrep's ``--bids-filter-file``.
    ignore : sequence of Path
        Folders inside ``bids_dir`` not to index (the output and work directories).
    derivatives : mapping, optional
        ``-d NAME=PATH`` datasets; "lesions" gives each run its lesion mask (see
        :func:`find_lesion_mask`). Other names are logged and left to later stages.

    Returns
    -------
    list of PetRun
        Sorted by subject, session, tracer, reconstruction, run.

    Raises
    ------
    InputError
        Not a BIDS dataset, unknown participant label, no PET for the selection, or any
        sidecar/image/anatomy problem (all listed together).
    """
    bids_dir = Path(bids_dir).resolve()
    check_bids_root(bids_dir)
    subjects = _labels(participant_label, "sub-")
    sessions = _labels(session_label, "ses-")
    tracers = _labels(tracer_label, "trc-")
    filters = _bids_filter(bids_filter)
    known = set(dataset_subjects(bids_dir))
    if subjects:
        unknown = [label for label in subjects if label not in known]
        if unknown:
            available = ", ".join(sorted(known)[:_LIST_LIMIT]) or "none"
            raise InputError(
                f"{bids_dir}: participant label(s) {', '.join(unknown)} not found (available: {available})"
            )
    layout = _layout(bids_dir, ignore, subjects)
    derivatives = dict(derivatives or {})
    for name in derivatives:
        if name not in KNOWN_DERIVATIVES:
            LOGGER.warning("-d %s=%s: not used by discovery (known: %s)", name, derivatives[name],
                           ", ".join(KNOWN_DERIVATIVES))
    lesions_dir = Path(derivatives["lesions"]) if "lesions" in derivatives else None
    if lesions_dir is not None:
        if not lesions_dir.is_dir():
            raise InputError(f"-d lesions={lesions_dir}: not a directory; give the folder holding "
                             "sub-<label>/[ses-<label>/]anat/*_label-lesion_mask.nii.gz")
        for message in unmatched_lesion_masks(lesions_dir, bids_dir):
            LOGGER.warning("%s", message)

    query: dict[str, Any] = dict(suffix="pet", datatype="pet", extension=_IMAGE_EXTENSIONS)
    if subjects:
        query["subject"] = subjects
    if sessions:
        query["session"] = sessions
    if tracers:
        query["tracer"] = tracers
    query.update(filters["pet"])
    pet_files = layout.get(**query)
    if not pet_files:
        selection = [f"participant(s) {', '.join(subjects)}" if subjects else "",
                     f"session(s) {', '.join(sessions)}" if sessions else "",
                     f"tracer(s) {', '.join(tracers)}" if tracers else ""]
        chosen = ", ".join(s for s in selection if s)
        raise InputError(
            f"{bids_dir}: no PET images (sub-*/[ses-*/]pet/*_pet.nii[.gz])"
            + (f" for {chosen}" if chosen else "")
        )

    t1w_images = _anat_images(layout, "T1w", subjects, filters["t1w"])
    flair_images = _anat_images(layout, "FLAIR", subjects, filters["flair"])
    runs: list[PetRun] = []
    problems: list[str] = []
    checked_images: dict[Path, list[str]] = {}  # a T1w serves several runs: check (and report) it once

    def unreadable(image: Path | None, check_values: bool = False) -> bool:
        if image is None:
            return False
        if image not in checked_images:
            checked_images[image] = image_problems(image, check_values=check_values)
            problems.extend(checked_images[image])
        return bool(checked_images[image])

    for bids_file in pet_files:
        entities = bids_file.get_entities()
        pet_file = Path(bids_file.path)
        file_problems: list[str] = []
        if unreadable(pet_file, check_values=True) and not pet_file.exists():  # a broken link: no sidecar lookup
            continue
        sidecar, metadata, json_problems = read_sidecar_metadata(pet_file, bids_dir)
        file_problems.extend(json_problems)
        if sidecar is None:
            file_problems.append(f"{pet_file}: no _pet.json sidecar (BIDS requires one; it holds the frame timing)")
        try:
            n_volumes: int | None = read_n_volumes(pet_file)
        except Exception:  # nibabel raises several types for broken files; image_problems named it
            n_volumes = None
        if n_volumes is not None and n_volumes < MIN_DYNAMIC_FRAMES:
            file_problems.append(f"{pet_file}: {n_volumes} frame(s); tspo-bids models dynamic PET and needs at least "
                                 f"{MIN_DYNAMIC_FRAMES} (static SUVR-only scans are not supported)")
        if sidecar is not None and not json_problems:  # an unreadable sidecar: that one problem, not its fallout
            errors, warnings = sidecar_problems(metadata, n_volumes)
            _warn_tracer_mismatch(entities.get("tracer"), metadata.get("TracerName"), pet_file)
            file_problems.extend(f"{sidecar}: {problem}" for problem in errors)
            for warning in warnings:
                LOGGER.warning("%s: %s", sidecar.name, warning)
        subject = entities["subject"]
        session = entities.get("session")
        t1w = _anat_for(t1w_images, subject, session, "T1w", True, file_problems, pet_file)
        flair = _anat_for(flair_images, subject, session, "FLAIR", False, file_problems, pet_file)
        lesion_mask, lesion_space = (None, None)
        if lesions_dir is not None:
            lesion_mask, lesion_space = find_lesion_mask(lesions_dir, subject, session, file_problems)
            if lesion_mask is None:
                LOGGER.warning("%s: no lesion mask in %s", pet_file.name, lesions_dir)
            elif lesion_space == "FLAIR" and flair is None:
                file_problems.append(f"{lesion_mask}: a FLAIR-space lesion mask needs the session's FLAIR, "
                                     f"which is missing")
        broken = [unreadable(image) for image in (pet_file, t1w, flair, lesion_mask)]
        problems.extend(file_problems)
        if file_problems or any(broken) or sidecar is None or t1w is None:
            continue
        runs.append(PetRun(
            subject=subject,
            session=session,
            tracer=entities.get("tracer"),
            reconstruction=entities.get("reconstruction"),
            run=None if entities.get("run") is None else str(entities["run"]),
            pet_file=pet_file,
            sidecar_file=sidecar,
            metadata=metadata,
            t1w_file=t1w,
            flair_file=flair,
            lesion_mask_file=lesion_mask,
            lesion_mask_space=lesion_space,
        ))
    if problems:
        raise InputError(_problem_message(problems))
    runs.sort(key=lambda r: tuple(str(v) for v in r.entities.values()))
    for run in runs:
        LOGGER.info("PET run %s: %s (T1w %s, FLAIR %s)", run.label, run.pet_file.name, run.t1w_file.name,
                    run.flair_file.name if run.flair_file else "none")
    return runs


# ----------------------------------------------------------------------------- participants.tsv

#: rs6971 genotype -> TSPO binding class (methods.md section 5).
RS6971_TO_GENOTYPE: Mapping[str, str] = {"CC": "HAB", "CT": "MAB", "TC": "MAB", "TT": "LAB"}
GENOTYPES: tuple[str, ...] = ("HAB", "MAB", "LAB")
#: Columns the group level uses; each is optional (analyses needing a missing one are skipped).
OPTIONAL_COLUMNS: tuple[str, ...] = ("group", "age", "sex", "edss", "tspo_genotype", "site", "progressed",
                                     "edss_followup")
NUMERIC_COLUMNS: tuple[str, ...] = ("age", "edss", "progressed", "edss_followup")
#: ``group`` values the README documents (healthy controls and MS courses); others are kept, with a warning.
KNOWN_GROUPS: tuple[str, ...] = ("HC", "CIS", "RRMS", "SPMS", "PPMS")


def read_participants(bids_dir: Path) -> pd.DataFrame:
    """Read ``participants.tsv`` with the columns tspo-bids uses normalised.

    * ``participant_id`` always starts with ``sub-``.
    * ``rs6971`` (CC/CT/TT, also written C/T or C|T) fills ``tspo_genotype`` (HAB/MAB/LAB)
      where that is missing; a disagreement is an error.
    * ``age``, ``edss``, ``progressed``, ``edss_followup`` are numeric; ``n/a`` is missing.
    * A missing optional column is simply absent (logged). Without participants.tsv the
      table holds only the participants found as ``sub-*`` folders (logged).

    Raises
    ------
    InputError
        Malformed file, no ``participant_id`` column, duplicates, non-numeric values in a
        numeric column, unknown genotype.
    """
    bids_dir = Path(bids_dir)
    path = bids_dir / "participants.tsv"
    if not path.is_file():
        labels = sorted(p.name for p in bids_dir.glob("sub-*") if p.is_dir())
        LOGGER.warning("%s: not found; group analyses needing participant characteristics are skipped", path)
        return pd.DataFrame({"participant_id": labels})
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=["n/a", ""])
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot be read as a TSV ({error})") from error
    table.columns = [str(c).strip() for c in table.columns]
    if "participant_id" not in table.columns:
        raise InputError(f"{path}: no participant_id column (BIDS requires it as the first column)")
    ids = table["participant_id"].astype(str).str.strip()
    table["participant_id"] = ids.where(ids.str.startswith("sub-"), "sub-" + ids)
    duplicated = table["participant_id"][table["participant_id"].duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{path}: participant_id repeated: {', '.join(duplicated)}")

    for column in NUMERIC_COLUMNS:
        if column in table.columns:
            numbers = pd.to_numeric(table[column], errors="coerce")
            bad = table[column].notna() & numbers.isna()
            if bad.any():
                rows = ", ".join(f"{pid}={value!r}" for pid, value in
                                 zip(table.loc[bad, "participant_id"], table.loc[bad, column]))
                raise InputError(f"{path}: column {column} must be numeric or n/a ({rows})")
            table[column] = numbers

    table = _genotype_column(table, path)
    for column in ("group", "sex", "site"):
        if column in table.columns:
            table[column] = table[column].str.strip()
    for column in OPTIONAL_COLUMNS:
        if column not in table.columns:
            LOGGER.info("%s: no %s column; analyses that need it are skipped", path.name, column)
    return table


def _genotype_column(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Normalise ``tspo_genotype`` and derive it from ``rs6971`` where missing."""
    derived = None
    if "rs6971" in table.columns:
        alleles = table["rs6971"].str.upper().str.replace(r"[^CT]", "", regex=True)
        derived = alleles.map(RS6971_TO_GENOTYPE)
        bad = table["rs6971"].notna() & derived.isna()
        if bad.any():
            rows = ", ".join(f"{pid}={value!r}" for pid, value in
                             zip(table.loc[bad, "participant_id"], table.loc[bad, "rs6971"]))
            raise InputError(f"{path}: rs6971 must be CC, CT or TT ({rows})")
    if "tspo_genotype" in table.columns:
        given = table["tspo_genotype"].str.strip().str.upper()
        bad = given.notna() & ~given.isin(GENOTYPES)
        if bad.any():
            rows = ", ".join(f"{pid}={value!r}" for pid, value in
                             zip(table.loc[bad, "participant_id"], table.loc[bad, "tspo_genotype"]))
            raise InputError(f"{path}: tspo_genotype must be HAB, MAB or LAB ({rows})")
        if derived is not None:
            conflict = given.notna() & derived.notna() & (given != derived)
            if conflict.any():
                rows = ", ".join(table.loc[conflict, "participant_id"])
                raise InputError(f"{path}: tspo_genotype disagrees with rs6971 for {rows}")
            given = given.fillna(derived)
        table["tspo_genotype"] = given
    elif derived is not None:
        table["tspo_genotype"] = derived
        LOGGER.info("%s: tspo_genotype derived from rs6971", path.name)
    return table
