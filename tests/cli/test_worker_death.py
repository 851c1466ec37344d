"""A worker process killed mid-node (e.g. by the out-of-memory killer) fails its node; the run does not hang.

Nipype's own MultiProc waits forever in that case (nipype issue #2548); tspo_bids.cli.plugin guards it.
Each case runs in a subprocess with a time limit, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tspo_bids.cli.run import workflow_failure_message

#: Far above what the three tiny nodes need (a few seconds), far below a hang.
TIME_LIMIT_S = 120

SCRIPT = textwrap.dedent('''
    import json, sys
    from nipype import config
    from nipype.interfaces.utility import Function
    from nipype.pipeline import engine as pe
    from tspo_bids.cli.plugin import GuardedMultiProcPlugin

    def work(x):
        import os, signal
        if x < 0:
            os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
        return 2 * x

    base, crash_dir, doomed, n_procs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    config.set("execution", "crashdump_dir", crash_dir)
    config.set("execution", "crashfile_format", "txt")
    config.set("execution", "poll_sleep_duration", "0.1")
    wf = pe.Workflow(name="guard", base_dir=base)
    def node(name):
        return pe.Node(Function(input_names=["x"], output_names=["y"], function=work), name=name)
    killed, independent, downstream = node("killed"), node("independent"), node("downstream")
    killed.inputs.x = doomed
    independent.inputs.x = 3
    wf.connect(killed, "y", downstream, "x")
    wf.add_nodes([independent])
    try:
        wf.run(plugin=GuardedMultiProcPlugin(plugin_args={"n_procs": n_procs}))
    except RuntimeError as error:
        print(json.dumps({"raised": str(error)[-500:]}))
    else:
        print(json.dumps({"raised": None}))
''')


def _run(tmp_path: Path, doomed: int, n_procs: int) -> tuple[dict, Path]:
    crash_dir = tmp_path / "crash"
    script = tmp_path / "guarded_run.py"  # a file: Nipype's Function nodes need the function's source
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "work"), str(crash_dir), str(doomed), str(n_procs)],
                            capture_output=True, text=True, timeout=TIME_LIMIT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), crash_dir


def _result_of(tmp_path: Path, name: str) -> Path:
    return tmp_path / "work" / "guard" / name / f"result_{name}.pklz"


def test_killed_worker_fails_its_node_and_the_rest_runs(tmp_path):
    """One worker: whichever of the two independent nodes runs first, the other runs (on a fresh pool
    after the kill), and only the killed node fails."""
    outcome, crash_dir = _run(tmp_path, doomed=-1, n_procs=1)  # subprocess.TimeoutExpired if it hangs
    assert outcome["raised"] is not None, "the run reported success although a node's worker was killed"
    message = workflow_failure_message(crash_dir)
    assert message.startswith("1 node(s) failed: guard.killed (WorkerDied: the worker process running this node "
                              "died"), message
    assert "\n" not in message
    assert _result_of(tmp_path, "independent").is_file()
    assert not _result_of(tmp_path, "downstream").is_file()  # its input never came


def test_killed_worker_with_nodes_running_beside_it_ends_the_run(tmp_path):
    """Two workers: a node running beside the killed one shares its broken pool and may fail too (it is
    named); the run ends either way."""
    outcome, crash_dir = _run(tmp_path, doomed=-1, n_procs=2)
    assert outcome["raised"] is not None
    message = workflow_failure_message(crash_dir)
    assert "guard.killed" in message and "WorkerDied" in message, message
    assert not _result_of(tmp_path, "downstream").is_file()


@pytest.mark.parametrize("n_procs", [1, 2])
def test_guarded_plugin_runs_a_healthy_workflow(tmp_path, n_procs):
    outcome, crash_dir = _run(tmp_path, doomed=1, n_procs=n_procs)
    assert outcome["raised"] is None
    assert not crash_dir.exists() or not any(crash_dir.iterdir())
    assert _result_of(tmp_path, "downstream").is_file()
    assert _result_of(tmp_path, "independent").is_file()


def test_a_task_whose_broken_pool_never_completes_it_fails():
    """The CPython race (a pool marked broken drops a just-submitted task without completing its future)."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    from tspo_bids.cli.plugin import GuardedMultiProcPlugin

    plugin = GuardedMultiProcPlugin(plugin_args={"n_procs": 1})
    try:
        plugin._task_obj[7] = Future()  # never completed
        plugin._task_pool[7] = SimpleNamespace(_broken="A child process terminated abruptly")
        plugin._task_obj[8] = Future()  # pending in a healthy pool: no result yet
        plugin._task_pool[8] = SimpleNamespace(_broken=False)
        assert plugin._get_result(8) is None
        result = plugin._get_result(7)
        assert result["traceback"][0].startswith("WorkerDied: the worker process running this node died")
        plugin._clear_task(7)
        assert 7 not in plugin._task_pool
    finally:
        plugin.pool.shutdown()


def test_other_delivery_errors_are_named_as_they_are():
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from tspo_bids.cli.plugin import failed_result

    future = Future()
    future.set_exception(TypeError("cannot pickle '_thread.lock' object"))
    try:
        future.result()
    except TypeError as error:
        assert failed_result(3, error)["traceback"] == ["TypeError: cannot pickle '_thread.lock' object\n"]
    assert failed_result(3, BrokenProcessPool("x"))["traceback"][0].startswith("WorkerDied: ")
