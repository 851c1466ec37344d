"""Reading BIDS entities back out of derivative filenames."""

from __future__ import annotations

import re
from pathlib import Path

_ENTITY = re.compile(r"(?:^|_)([a-zA-Z]+)-([a-zA-Z0-9]+)")


def parse_entities(path: str | Path) -> dict[str, str]:
    """The ``key-value`` entities of a BIDS filename, in order, plus its ``suffix``.

    >>> parse_entities("sub-01_ses-a_trc-PK11195_model-SRTM_kinpar.tsv")
    {'sub': '01', 'ses': 'a', 'trc': 'PK11195', 'model': 'SRTM', 'suffix': 'kinpar'}
    """
    stem = Path(path).name.split(".", 1)[0]
    entities = dict(_ENTITY.findall(stem))
    entities["suffix"] = stem.rsplit("_", 1)[-1]
    return entities
