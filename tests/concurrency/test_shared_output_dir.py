"""Several participant processes writing into one OUTPUT_DIR at the same time (fast, no pipeline).

Four processes start together (a barrier) and each, many times over: writes the shared
dataset_description.json (+ .bidsignore), writes its own derivative files and one file all of them
write, and opens its own log file, while a fifth process keeps reading the shared files. Checks:
every read parsed (no half-written file was ever visible), dataset_description.json is valid with
the derivative fields, no output is lost, no temporary file is left, each process has its own log.
The full pipeline version of this check (four and more participant jobs of a Slurm array) is
tests/slurm/test_sbatch_array.py.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from tspo_bids.bids.derivatives import (
    BIDSIGNORE_PATTERNS,
    write_dataset_description,
    write_json_atomic,
    write_tsv_atomic,
)
from tspo_bids.cli.run import setup_logging

REPO = Path(__file__).resolve().parents[2]
TEST_BIDS = REPO / "data" / "test_bids"
WRITERS = 4
ROUNDS = 40
ROWS = 2000  # large enough that a non-atomic write would be seen half-done


def _table(writer: int, round_: int) -> pd.DataFrame:
    return pd.DataFrame({"region": [f"r{i}" for i in range(ROWS)], "writer": writer, "round": round_,
                         "value": [writer * 1e6 + round_ + i * 1e-3 for i in range(ROWS)]})


def _writer(writer: int, out: Path, barrier, errors) -> None:
    try:
        label = f"{writer:02d}"
        settings = SimpleNamespace(analysis_level="participant", participant_label=(label,), session_label=None)
        barrier.wait(timeout=60)
        log = setup_logging(0, out / "logs", settings)
        for round_ in range(ROUNDS):
            write_dataset_description(out, TEST_BIDS)
            own = out / f"sub-{label}" / "pet" / f"sub-{label}_model-SRTM_kinpar.tsv"
            write_tsv_atomic(_table(writer, round_), own)
            write_json_atomic({"writer": writer, "round": round_, "values": list(range(ROWS))},
                              own.with_suffix(".json"))
            write_tsv_atomic(_table(writer, round_), out / "shared_table.tsv")
        assert log is not None and log.is_file()
    except BaseException as error:  # reported to the parent
        errors.put(f"writer {writer}: {error!r}")


def _reader(out: Path, stop, errors, reads) -> None:
    count = 0
    try:
        while not stop.is_set():
            for path in (out / "dataset_description.json", out / "shared_table.tsv"):
                try:
                    text = path.read_text()
                except FileNotFoundError:
                    continue
                if path.suffix == ".json":
                    assert json.loads(text)["DatasetType"] == "derivative"
                else:
                    lines = text.splitlines()
                    assert len(lines) == ROWS + 1, f"{path.name}: {len(lines)} lines (half-written?)"
                    assert len({line.split("\t")[1] for line in lines[1:]}) == 1, "rows of two writers mixed"
                count += 1
    except BaseException as error:
        errors.put(f"reader: {error!r}")
    reads.put(count)


def test_concurrent_writers_share_one_output_dir(tmp_path):
    out = tmp_path / "out"
    context = multiprocessing.get_context("fork")
    barrier, errors, reads, stop = context.Barrier(WRITERS), context.Queue(), context.Queue(), context.Event()
    reader = context.Process(target=_reader, args=(out, stop, errors, reads))
    writers = [context.Process(target=_writer, args=(w, out, barrier, errors)) for w in range(1, WRITERS + 1)]
    reader.start()
    started = time.monotonic()
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
    stop.set()
    reader.join(timeout=30)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, problems
    assert all(p.exitcode == 0 for p in [*writers, reader]), [p.exitcode for p in writers]
    assert reads.get(timeout=5) > 0, "the reader never saw the shared files"
    assert time.monotonic() - started < 120

    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "tspo-bids"
    assert description["SourceDatasets"]
    for writer in range(1, WRITERS + 1):
        own = out / f"sub-{writer:02d}" / "pet" / f"sub-{writer:02d}_model-SRTM_kinpar.tsv"
        table = pd.read_csv(own, sep="\t")
        assert len(table) == ROWS and set(table["writer"]) == {writer} and set(table["round"]) == {ROUNDS - 1}
        assert json.loads(own.with_suffix(".json").read_text())["round"] == ROUNDS - 1
    shared = pd.read_csv(out / "shared_table.tsv", sep="\t")
    assert len(shared) == ROWS and shared["writer"].nunique() == 1 and set(shared["round"]) == {ROUNDS - 1}
    assert (out / ".bidsignore").read_text().splitlines() == list(BIDSIGNORE_PATTERNS)
    logs = sorted((out / "logs").glob("sub-*.log"))
    assert len(logs) == WRITERS, logs
    leftovers = [p for p in out.rglob(".*") if p.is_file() and p.name not in (".bidsignore",
                                                                              ".dataset_description.lock")]
    assert not leftovers, leftovers
