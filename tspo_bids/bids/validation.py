"""Run the BIDS validator (bids-validator-deno, offline) on the input dataset.

The validator is the ``bids-validator-deno`` pip package (BIDS validator 3.x); its
executable sits beside the Python interpreter or on ``PATH``. It bundles its schema and
needs no network; a small dataset takes about 0.3 s. Without the executable tspo-bids
logs a warning and carries on (the pipeline's own sidecar checks still run).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tspo_bids.errors import InputError

LOGGER = logging.getLogger("tspo_bids.bids")

VALIDATOR_NAMES: tuple[str, ...] = ("bids-validator-deno", "bids-validator")
VALIDATOR_TIMEOUT_S = 600
_LIST_LIMIT = 20


def find_validator() -> Path | None:
    """The bids-validator-deno executable next to ``sys.executable``, else on ``PATH``, else None."""
    here = Path(sys.executable).parent
    candidate = here / VALIDATOR_NAMES[0]
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(VALIDATOR_NAMES[0])
    return Path(found) if found else None


def validate_bids(bids_dir: Path, participant_label: Sequence[str] | None = None,
                  executable: Path | None = None) -> list[str]:
    """Validate ``bids_dir``; raise on errors that concern the selected participants.

    Parameters
    ----------
    bids_dir : Path
        Dataset root.
    participant_label : sequence of str, optional
        Errors in other participants' folders are ignored (logged at debug level).
    executable : Path, optional
        Validator to run (default :func:`find_validator`).

    Returns
    -------
    list of str
        The validator's warnings, as ``<location>: <code>`` lines (also logged at debug level).

    Raises
    ------
    InputError
        Listing every error (``<file>: <code> <sub-code>``), joined with ``"; "``.
    """
    executable = executable or find_validator()
    if executable is None:
        LOGGER.warning("bids-validator-deno not found next to %s or on PATH: BIDS validation skipped "
                       "(pip install bids-validator-deno)", sys.executable)
        return []
    command = [str(executable), "--format", "json", "--no-color", str(bids_dir)]
    LOGGER.info("validating %s with %s", bids_dir, executable.name)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=VALIDATOR_TIMEOUT_S,
                                check=False, env={**os.environ, "NO_COLOR": "1"})
    except (OSError, subprocess.TimeoutExpired) as error:
        LOGGER.warning("BIDS validator could not run (%s): validation skipped", error)
        return []
    try:
        report = json.loads(result.stdout)
        issues = report["issues"]["issues"]
    except (ValueError, KeyError, TypeError):
        LOGGER.warning("BIDS validator gave no JSON report (exit %d: %s): validation skipped",
                       result.returncode, " ".join((result.stderr or result.stdout).split())[:300])
        return []

    subjects = {f"sub-{label.removeprefix('sub-')}" for label in participant_label or []}
    errors: list[str] = []
    warnings: list[str] = []
    for issue in issues:
        location = str(issue.get("location") or "")
        code = str(issue.get("code", "UNKNOWN"))
        sub_code = issue.get("subCode")
        text = f"{bids_dir}{location}: {code}" + (f" {sub_code}" if sub_code else "")
        if issue.get("severity") == "error":
            first = location.strip("/").split("/", 1)[0]
            if subjects and first.startswith("sub-") and first not in subjects:
                LOGGER.debug("BIDS validator (other participant): %s", text)
                continue
            if text not in errors:
                errors.append(text)
        else:
            warnings.append(text)
    for warning in warnings:
        LOGGER.debug("BIDS validator warning: %s", warning)
    if warnings:
        LOGGER.info("BIDS validator: %d warning(s) (shown with -vv)", len(warnings))
    if errors:
        shown = errors[:_LIST_LIMIT]
        more = f"; ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise InputError(
            "BIDS validation failed (use --skip-bids-validation to bypass): " + "; ".join(shown) + more
        )
    return warnings
