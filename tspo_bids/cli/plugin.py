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
        future.add_done_callback(functools.partial(self._task_done, taskid))
        return taskid

    def _task_done(self, taskid: int, future: Future) -> None:
        """Store the task's result; a task whose worker died gets a failed result (traceback = reason)."""
        try:
            result = future.result()
        except BaseException as error:  # noqa: BLE001 - any loss of the worker fails the node, never the loop
            result = {"result": None, "taskid": taskid, "hostname": "",
                      "traceback": [f"WorkerDied: {WORKER_DIED.format(error=type(error).__name__)}\n"]}
        self._taskresult[taskid] = result
