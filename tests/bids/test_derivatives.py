"""Derivative naming, atomic writers and dataset_description.json under concurrent writers."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tspo_bids import __version__
from tspo_bids.bids import derivatives as deriv
from tspo_bids.bids.derivatives import (
    ENTITY_ORDER,
    copy_atomic,
    derivative_path,
    sidecar_path,
    write_bytes_atomic,
    write_dataset_description,
    write_json_atomic,
    write_text_atomic,
    write_tsv_atomic,
)
from tspo_bids.errors import InputError


# ----------------------------------------------------------------------------- naming


def test_full_entity_order():
    entities = {key: f"x{i}" for i, key in enumerate(reversed(ENTITY_ORDER))}
    path = derivative_path(entities, "pet", ".nii.gz", "pet")
    stem = path.name.removesuffix("_pet.nii.gz")
    assert [part.split("-")[0] for part in stem.split("_")] == list(ENTITY_ORDER)
    assert path.parts[:3] == ("sub-" + entities["sub"], "ses-" + entities["ses"], "pet")


@pytest.mark.parametrize(
    ("entities", "suffix", "extension", "datatype", "expected"),
    [
        ({"sub": "01", "ses": "baseline", "model": "SRTM"}, "kinpar", ".tsv", "pet",
         "sub-01/ses-baseline/pet/sub-01_ses-baseline_model-SRTM_kinpar.tsv"),
        ({"sub": "01", "desc": "preproc", "space": "T1w", "trc": "PK11195"}, "pet", ".nii.gz", "pet",
         "sub-01/pet/sub-01_trc-PK11195_space-T1w_desc-preproc_pet.nii.gz"),
        ({"sub": "02", "from_": "pet", "to": "T1w", "mode": "image"}, "xfm", ".mat", "pet",
         "sub-02/pet/sub-02_from-pet_to-T1w_mode-image_xfm.mat"),
        ({"sub": "02", "label": "cerebellumgm", "desc": "ref", "seg": None}, "mask", ".nii.gz", "anat",
         "sub-02/anat/sub-02_label-cerebellumgm_desc-ref_mask.nii.gz"),
        ({"sub": "03", "run": 2, "rec": "OSEM", "meas": "BPND", "model": "SRTM", "space": "MNI152"},
         "mimap", ".nii.gz", "pet",
         "sub-03/pet/sub-03_rec-OSEM_run-2_space-MNI152_model-SRTM_meas-BPND_mimap.nii.gz"),
        ({"sub": "01"}, "report", ".html", None, "sub-01/sub-01_report.html"),
    ],
)
def test_derivative_names(entities, suffix, extension, datatype, expected):
    assert derivative_path(entities, suffix, extension, datatype) == Path(expected)


@pytest.mark.parametrize(
    ("entities", "suffix", "extension", "datatype"),
    [
        ({"sub": "0-1"}, "pet", ".nii.gz", "pet"),  # label with a dash
        ({"sub": "01", "desc": "pre_proc"}, "pet", ".nii.gz", "pet"),  # underscore
        ({"sub": "01", "acq": "x"}, "pet", ".nii.gz", "pet"),  # entity not in the table
        ({"ses": "1"}, "pet", ".nii.gz", "pet"),  # no sub
        ({"sub": "01"}, "pet_x", ".nii.gz", "pet"),  # bad suffix
        ({"sub": "01"}, "pet", "nii.gz", "pet"),  # extension without dot
        ({"sub": "01"}, "pet", ".nii.gz", "func"),  # datatype not ours
        ({"sub": ""}, "pet", ".nii.gz", "pet"),  # empty label
    ],
)
def test_derivative_name_errors(entities, suffix, extension, datatype):
    with pytest.raises(ValueError):
        derivative_path(entities, suffix, extension, datatype)


def test_sidecar_path():
    assert sidecar_path(Path("a/sub-01_pet.nii.gz")) == Path("a/sub-01_pet.json")
    assert sidecar_path(Path("sub-01_model-SRTM_kinpar.tsv")) == Path("sub-01_model-SRTM_kinpar.json")


# ----------------------------------------------------------------------------- atomic writers


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_bytes_creates_parents_and_normal_mode(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    write_bytes_atomic(b"\x00\x01data", target)
    assert target.read_bytes() == b"\x00\x01data"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert _leftovers(target.parent) == []


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "table.json"
    write_json_atomic({"a": 1}, target)
    with pytest.raises(TypeError):
        write_json_atomic({"a": object()}, target)  # not serialisable
    with pytest.raises(FileNotFoundError):
        copy_atomic(tmp_path / "missing", target)  # fails after the temp file exists
    assert json.loads(target.read_text()) == {"a": 1}
    assert _leftovers(tmp_path) == []


def test_rewriting_the_same_content_keeps_the_file_and_its_time(tmp_path):
    target = tmp_path / "sub-01_desc-x_kinpar.json"
    write_json_atomic({"a": 1}, target)
    os.utime(target, (1_000_000_000, 1_000_000_000))
    inode = target.stat().st_ino
    write_json_atomic({"a": 1}, target)  # a re-run: same bytes
    assert target.stat().st_mtime == 1_000_000_000 and target.stat().st_ino == inode
    assert _leftovers(tmp_path) == []
    write_json_atomic({"a": 2}, target)  # new content replaces it
    assert json.loads(target.read_text()) == {"a": 2} and target.stat().st_mtime > 1_000_000_000
    assert _leftovers(tmp_path) == []


def test_same_content_still_gets_a_fresh_mode_and_replaces_a_symlink(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    target = write_text_atomic("x", tmp_path / "kept.txt")
    os.chmod(target, 0o600)
    os.utime(target, (1_000_000_000, 1_000_000_000))
    write_text_atomic("x", target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask and target.stat().st_mtime == 1_000_000_000
    elsewhere = write_text_atomic("y", tmp_path / "elsewhere.txt")
    link = tmp_path / "link.txt"
    link.symlink_to(elsewhere)
    write_text_atomic("y", link)  # same bytes behind a symlink: the output becomes a file of its own
    assert not link.is_symlink() and link.read_text() == "y" and elsewhere.read_text() == "y"


def test_copy_atomic(tmp_path):
    source = tmp_path / "src.txt"
    source.write_text("hello")
    os.chmod(source, 0o600)
    target = copy_atomic(source, tmp_path / "out" / "dst.txt")
    assert target.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # fresh mode, not the source's 0600


def test_json_numpy_and_nan(tmp_path):
    target = write_json_atomic(
        {"x": np.float32(1.5), "n": np.int64(3), "arr": np.arange(3), "nan": float("nan"),
         "inf": np.inf, "path": Path("/a/b"), "nested": {"v": [np.float64(2.0), math.nan]}},
        tmp_path / "m.json",
    )
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"x": 1.5, "n": 3, "arr": [0, 1, 2], "nan": None, "inf": None,
                                "path": "/a/b", "nested": {"v": [2.0, None]}}


def test_tsv_na_and_roundtrip(tmp_path):
    table = pd.DataFrame({"region": ["wm", "thalamus"], "BPND": [0.2, np.nan], "flag": [0, 1]})
    target = write_tsv_atomic(table, tmp_path / "k.tsv")
    lines = target.read_text().splitlines()
    assert lines == ["region\tBPND\tflag", "wm\t0.2\t0", "thalamus\tn/a\t1"]
    back = pd.read_csv(target, sep="\t", na_values="n/a")
    pd.testing.assert_frame_equal(back, table)


# ----------------------------------------------------------------------------- dataset_description


def _raw(tmp_path: Path, **extra) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dataset_description.json").write_text(json.dumps({"Name": "raw", "BIDSVersion": "1.10.0", **extra}))
    return raw


def test_dataset_description_content(tmp_path, monkeypatch):
    monkeypatch.setenv(deriv.CONTAINER_ENV, "docker://ghcr.io/org/tspo-bids:0.1.0")
    raw = _raw(tmp_path, DatasetDOI="doi:10.1/xyz")
    out = tmp_path / "out"
    path = write_dataset_description(out, raw)
    content = json.loads(path.read_text())
    assert content["DatasetType"] == "derivative"
    assert content["BIDSVersion"] == deriv.BIDS_VERSION
    assert content["GeneratedBy"] == [{"Name": "tspo-bids", "Version": __version__, "CodeURL": deriv.CODE_URL,
                                       "Container": {"Type": "docker", "Tag": "ghcr.io/org/tspo-bids:0.1.0"}}]
    assert content["SourceDatasets"] == [{"URL": raw.resolve().as_uri(), "DOI": "doi:10.1/xyz"}]


def test_dataset_description_of_a_raw_dataset_with_a_byte_order_mark(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dataset_description.json").write_text(
        json.dumps({"Name": "raw", "BIDSVersion": "1.10.0", "DatasetDOI": "doi:10.1/bom"}), encoding="utf-8-sig")
    content = json.loads(write_dataset_description(tmp_path / "out", raw).read_text())
    assert content["SourceDatasets"] == [{"URL": raw.resolve().as_uri(), "DOI": "doi:10.1/bom"}]


def test_dataset_description_without_container(tmp_path, monkeypatch):
    monkeypatch.delenv(deriv.CONTAINER_ENV, raising=False)
    content = json.loads(write_dataset_description(tmp_path / "out", _raw(tmp_path)).read_text())
    assert "Container" not in content["GeneratedBy"][0]


def test_dataset_description_idempotent(tmp_path, monkeypatch):
    monkeypatch.delenv(deriv.CONTAINER_ENV, raising=False)
    raw, out = _raw(tmp_path), tmp_path / "out"
    path = write_dataset_description(out, raw)
    os.utime(path, (1_000_000, 1_000_000))
    write_dataset_description(out, raw)
    assert path.stat().st_mtime == 1_000_000  # same content: not rewritten


def test_dataset_description_refuses_foreign_derivatives(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "BIDSVersion": "1.10.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "fMRIPrep"}]}))
    with pytest.raises(InputError, match="fMRIPrep"):
        write_dataset_description(out, _raw(tmp_path))


def test_dataset_description_replaces_broken_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_description.json").write_text("{broken")
    content = json.loads(write_dataset_description(out, _raw(tmp_path)).read_text())
    assert content["DatasetType"] == "derivative"


def _writer(out: str, raw: str, container: str, barrier, repeats: int) -> None:
    os.environ[deriv.CONTAINER_ENV] = container
    barrier.wait()
    for _ in range(repeats):
        write_dataset_description(Path(out), Path(raw))


def _reader(path: str, barrier, stop, failures) -> None:
    barrier.wait()
    while not stop.is_set():
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            continue
        try:
            json.loads(text)
        except ValueError:
            failures.value += 1


def test_dataset_description_concurrent_writers(tmp_path):
    """8 processes write (two different contents, forcing rewrites) while one reads: never a torn file."""
    raw, out = _raw(tmp_path), tmp_path / "out"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(9)
    stop = ctx.Event()
    failures = ctx.Value("i", 0)
    containers = ["docker://a:1", "docker://b:2"]
    writers = [ctx.Process(target=_writer, args=(str(out), str(raw), containers[i % 2], barrier, 25))
               for i in range(8)]
    reader = ctx.Process(target=_reader, args=(str(out / "dataset_description.json"), barrier, stop, failures))
    for process in [*writers, reader]:
        process.start()
    for process in writers:
        process.join(60)
    stop.set()
    reader.join(60)
    assert [p.exitcode for p in writers] == [0] * 8
    assert reader.exitcode == 0
    assert failures.value == 0
    content = json.loads((out / "dataset_description.json").read_text())
    assert content["GeneratedBy"][0]["Container"]["Tag"] in ("a:1", "b:2")
    leftovers = [p.name for p in out.iterdir() if p.name not in ("dataset_description.json", ".bidsignore",
                                                                  ".dataset_description.lock")]
    assert leftovers == []


def test_bidsignore_written_once_and_user_lines_kept(tmp_path):
    raw, out = _raw(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / ".bidsignore").write_text("extra/\n*_tacs.*\n")
    write_dataset_description(out, raw)
    write_dataset_description(out, raw)
    lines = (out / ".bidsignore").read_text().splitlines()
    assert lines[0] == "extra/" and lines.count("*_tacs.*") == 1
    assert set(deriv.BIDSIGNORE_PATTERNS) <= set(lines)
