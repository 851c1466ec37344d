"""Gather participant-level tables into one group table."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from tspo_bids.bids.names import parse_entities
from tspo_bids.errors import InputError

#: Entity key in filenames -> column in group tables.
ENTITY_COLUMNS = {"sub": "participant_id", "ses": "session_id", "trc": "tracer", "rec": "reconstruction",
                  "run": "run", "model": "model"}


def collect_kinpar(output_dir: Path, participant_label: list[str] | None = None) -> pd.DataFrame:
    """Every participant's ``*_kinpar.tsv`` as one long table.

    Parameters
    ----------
    output_dir : Path
        The tspo-bids derivatives folder.
    participant_label : list of str, optional
        Restrict to these participants (labels without ``sub-``).

    Returns
    -------
    DataFrame
        One row per participant x session x run x model x region: the entity columns
        (``participant_id`` as ``sub-<label>``, ``session_id``, ``tracer``, ``model``, ...)
        followed by the kinpar columns. Empty when no table is found.
    """
    frames = []
    for path in sorted(Path(output_dir).glob("sub-*/**/pet/*_kinpar.tsv")):
        entities = parse_entities(path)
        if entities.get("desc") == "lesions":  # per-lesion tables: lesion phenotypes, not regions
            continue
        if participant_label and entities.get("sub") not in participant_label:
            continue
        table = read_kinpar_table(path)
        for key, column in reversed(ENTITY_COLUMNS.items()):
            if key in entities:
                value = f"sub-{entities[key]}" if key == "sub" else entities[key]
                table.insert(0, column, value)
        frames.append(table)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    leading = [c for c in ENTITY_COLUMNS.values() if c in table.columns]
    return table[leading + [c for c in table.columns if c not in leading]]


def join_participants(kinpar: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """Left-join participant characteristics (group, age, EDSS, genotype ...) onto each row."""
    if kinpar.empty:
        return kinpar
    extra = participants.drop_duplicates("participant_id")
    return kinpar.merge(extra, on="participant_id", how="left", validate="many_to_one")


def read_kinpar_table(path: Path) -> pd.DataFrame:
    """One participant-level ``*_kinpar.tsv``, refusing a damaged file.

    tspo-bids writes these tables atomically, ending with a newline; a file that is empty, does not parse,
    lacks the ``region`` column or stops mid-line was damaged after it was written (a failed copy, a full
    disk) and would put wrong rows into the group table.

    Raises
    ------
    InputError
        Naming the file, the problem and the fix (re-run the participant level for that participant).
    """
    fix = "re-run the participant level for this participant"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot be read ({error}); {fix}") from error
    if not text.strip():
        raise InputError(f"{path}: empty; {fix}")
    if not text.endswith("\n"):
        raise InputError(f"{path}: ends mid-line, so it was cut short; {fix}")
    try:
        table = pd.read_csv(io.StringIO(text), sep="\t", na_values="n/a")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"{path}: not a readable TSV ({' '.join(str(error).split())}); {fix}") from error
    if "region" not in table.columns:
        raise InputError(f"{path}: no 'region' column, so not a tspo-bids kinpar table; {fix}")
    return table
