"""The work directory remembers which tspo-bids build filled it.

Nipype reuses a node's cached result when the node's *inputs* are unchanged; it does not know
when the code behind the node changed. Resuming a work directory with another build of
tspo-bids could therefore mix results of two versions without notice. The first run writes a
stamp (version and a fingerprint of the package's source files) into the work directory; a
later run with another build stops with a one-line message instead of resuming.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tspo_bids import __version__
from tspo_bids.errors import InputError

#: Name of the stamp file inside the work directory.
STAMP_NAME = ".tspo-bids-build"


def build_fingerprint(package_dir: Path | None = None) -> str:
    """``"<version> <sha256 prefix>"`` of the package's Python sources (relative paths and contents).

    Parameters
    ----------
    package_dir : Path, optional
        Root of the package to fingerprint (default: the installed ``tspo_bids``).
    """
    root = Path(__file__).resolve().parents[1] if package_dir is None else Path(package_dir)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{__version__} {digest.hexdigest()[:16]}"


def check_work_dir_build(work_dir: Path) -> None:
    """Stamp a new work directory with this build, or refuse one filled by another build.

    Parameters
    ----------
    work_dir : Path
        An existing work directory.

    Raises
    ------
    InputError
        When the work directory's stamp names another build.
    """
    fingerprint = build_fingerprint()
    stamp = Path(work_dir) / STAMP_NAME
    if stamp.is_file():
        recorded = stamp.read_text(encoding="utf-8").strip()
        if recorded != fingerprint:
            raise InputError(f"{work_dir}: filled by another tspo-bids build ({recorded}; this is {fingerprint}), "
                             "so its cached steps could be stale; use a new -w/--work-dir or delete this one")
        return
    partial = stamp.with_name(f"{STAMP_NAME}.{os.getpid()}.tmp")
    try:
        partial.write_text(fingerprint + "\n", encoding="utf-8")
        os.replace(partial, stamp)
    except OSError as error:
        raise InputError(f"{work_dir}: cannot write to the work directory ({error.strerror}); "
                         "choose another with -w/--work-dir") from error
