"""Reading the JSON files users give (sidecars, dataset_description.json, option files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path | str) -> Any:
    """The JSON content of ``path``, UTF-8 with or without a byte-order mark (Windows tools write one).

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        The file is not valid JSON (``json.JSONDecodeError``) or not UTF-8.
    """
    return json.loads(Path(path).read_text(encoding="utf-8-sig"))
