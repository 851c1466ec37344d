"""Nipype's MultiProc plugin, made to fail instead of hang when a worker process dies.

When a worker process dies (the kernel's out-of-memory killer, a signal, a crash in compiled code),
:class:`concurrent.futures.ProcessPoolExecutor` fails every future of that pool with
``BrokenProcessPool``. Nipype's MultiProc (1.11) reads results in a future callback that re-raises
that exception, so the task never gets a result and the scheduler waits for it forever (nipype
issue #2548): a Slurm job then sits until its time limit. :class:`GuardedMultiProcPlugin` records
those tasks as failed nodes, with a one-line reason, and starts a fresh pool for the nodes that
remain. Nipype then reports the failed nodes (crash files) as for any other node failure, the run
ends with an error, and re-running resumes from the work directory.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
import multiprocessing as mp

from nipype.pipeline.plugins.multiproc import MultiProcPlugin, process_initializer, run_node

#: Reason written into the crash file of a node whose worker died.
WORKER_DIED = ("the worker process running this node died ({error}); most often the system ran out of memory: "
               "lower --nprocs or raise the memory available, then run the same command again to resume")


class GuardedMultiProcPlugin(MultiProcPlugin):
    """MultiProc whose tasks fail, rather than hang, when their worker process dies.

    Nipype derives the plugin name from the class name (``GuardedMultiProc``); the plugin arguments
    are those of MultiProc (``n_procs``, ``memory_gb``, ``raise_insufficient``, ``mp_context``, ...).
    """

    def __init__(self, plugin_args: dict | None = None) -> None:
        super().__init__(plugin_args=plugin_args)
        self._task_pool: dict[int, ProcessPoolExecutor] = {}  # the pool each unfinished task went to

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.processors, initializer=process_initializer,
                                   initargs=(self._cwd,),
                                   mp_context=mp.get_context(self.plugin_args.get("mp_context")))

    def _submit_job(self, node, updatehash: bool = False) -> int:
        self._taskid += 1
        taskid = self._taskid
        if getattr(node.interface, "terminal_output", "") == "stream":  # as MultiProc: no streaming
            node.interface.terminal_output = "allatonce"
        try:
            future = self.pool.submit(run_node, node, updatehash, taskid)
        except BrokenProcessPool:  # an earlier worker died: the pool takes no more work
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            future = self.pool.submit(run_node, node, updatehash, taskid)
        self._task_obj[taskid] = future
        self._task_pool[taskid] = self.pool
        future.add_done_callback(functools.partial(self._task_done, taskid))
        return taskid

    def _task_done(self, taskid: int, future: Future) -> None:
        """Store the task's result (the future's callback, run in the executor's thread)."""
        try:
            result = future.result()
        except BaseException as error:  # noqa: BLE001 - a failure to deliver the result fails the node, not the loop
            result = failed_result(taskid, error)
        self._taskresult[taskid] = result

    def _get_result(self, taskid: int) -> dict | None:
        """The task's result; a failed one when its pool broke but its future was never completed.

        CPython (3.11) marks a pool broken and drops its pending work without the executor's lock, so a
        task submitted in that instant may never complete: it would hang the run like nipype #2548.
        """
        result = self._taskresult.get(taskid)
        if result is None:
            future, pool = self._task_obj.get(taskid), self._task_pool.get(taskid)
            if future is not None and not future.done() and getattr(pool, "_broken", False):
                result = self._taskresult.setdefault(taskid, failed_result(taskid, BrokenProcessPool()))
        return result

    def _clear_task(self, taskid: int) -> None:
        super()._clear_task(taskid)
        self._task_pool.pop(taskid, None)


def failed_result(taskid: int, error: BaseException) -> dict:
    """A Nipype task result for a task that produced none: the traceback is the one-line reason.

    ``BrokenProcessPool`` (the worker died) gets :data:`WORKER_DIED`; any other error (e.g. a result that
    could not be sent back from the worker) is reported by its type and message.
    """
    if isinstance(error, BrokenProcessPool):
        reason = f"WorkerDied: {WORKER_DIED.format(error=type(error).__name__)}"
    else:
        reason = f"{type(error).__name__}: {' '.join(str(error).split()) or 'the worker returned no result'}"
    return {"result": None, "taskid": taskid, "hostname": "", "traceback": [reason + "\n"]}
