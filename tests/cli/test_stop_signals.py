"""SIGTERM (a Slurm time limit, ``docker stop``) or Ctrl-C during a participant run: one line, exit 128 + signal,
nothing half-written.

Runs the real command on one participant of data/test_bids and stops it once the workflow has started, with
the single-process plugin (the signal lands inside a node) and with MultiProc (it lands in the scheduler
while workers run nodes).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_BIDS = REPO / "data" / "test_bids"
STARTED = "running tspo_bids_wf"
#: Generous: the run itself must stop within this after the signal (Slurm's default KillWait is 30 s).
STOP_LIMIT_S = 60
MESSAGES = {signal.SIGTERM: "tspo-bids: error: stopped by SIGTERM", signal.SIGINT: "tspo-bids: error: stopped by Ctrl-C"}


def _wait_for(path: Path, text: str, process: subprocess.Popen, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before its workflow started: "
                        f"{path.read_text()[-2000:]}")
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"no {text!r} within {limit_s} s")


@pytest.mark.parametrize("nprocs, signum", [("1", signal.SIGTERM), ("2", signal.SIGTERM), ("2", signal.SIGINT)])
def test_stop_signal_ends_the_run_in_one_line(tmp_path, nprocs, signum):
    out, work, stderr = tmp_path / "out", tmp_path / "work", tmp_path / "stderr.txt"
    with open(stderr, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "tspo_bids.cli.run", str(TEST_BIDS), str(out), "participant",
             "--participant-label", "01", "-w", str(work), "--nprocs", nprocs, "--skip-bids-validation"],
            stdout=subprocess.DEVNULL, stderr=handle)
        _wait_for(stderr, STARTED, process, limit_s=120)
        time.sleep(3)  # into the first nodes
        process.send_signal(signum)
        try:
            code = process.wait(timeout=STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"still running {STOP_LIMIT_S} s after signal {signum}")
    lines = stderr.read_text().strip().splitlines()
    assert code == 128 + signum, lines[-5:]
    assert lines[-1].startswith(MESSAGES[signum]) and "resume" in lines[-1], lines[-5:]
    assert not any("Traceback" in line for line in lines), lines
    # Atomic writes: no temporary file of an interrupted write is left beside the derivatives.
    leftovers = [p for p in out.rglob(".*") if p.is_file() and p.name not in (".bidsignore", ".dataset_description.lock")]
    assert leftovers == []
