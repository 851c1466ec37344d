"""The parametric maps' sidecar gets the run's k2' (known only after the voxel fits)."""

from __future__ import annotations

import math

from tspo_bids.interfaces.bids import K2PrimeMeta


def test_k2prime_added_to_the_static_sidecar(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    meta = K2PrimeMeta(meta={"Description": "SRTM2 DVR"}, k2prime=0.0812).run().outputs.meta
    assert meta["Description"] == "SRTM2 DVR"
    assert meta["K2Prime"]["Value"] == 0.0812 and meta["K2Prime"]["Units"] == "1/min"
    missing = K2PrimeMeta(meta={}, k2prime=math.nan).run().outputs.meta
    assert missing["K2Prime"]["Value"] is None  # JSON has no NaN
