"""``tspo-bids`` entry point: options -> Settings -> discovery -> workflow (or group level).

Exit codes: 0 success; 1 an :class:`~tspo_bids.errors.InputError` (printed as one line
``tspo-bids: error: <message>``), a failed workflow node (one line naming the node(s) and
crash file(s)), a file-system error (one line naming the path: read-only, full, no permission)
or an unexpected exception (one line; its traceback goes to the log file, or to the console
with ``-vv`` before a log file exists); 2 a command-line usage error (argparse); 143 stopped by
SIGTERM (a Slurm time limit, ``docker stop``), 130 by Ctrl-C (SIGINT): one line, and running the
same command again resumes from the work directory.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tspo_bids import __version__
from tspo_bids.config import ReadOnlyDict, Settings
from tspo_bids.errors import InputError

LOGGER = logging.getLogger("tspo_bids")
#: Between WARNING and INFO: progress lines shown without -v (as fMRIPrep's IMPORTANT).
PROGRESS = 25
logging.addLevelName(PROGRESS, "PROGRESS")
_LOCAL_PLUGINS = {"Linear", "MultiProc", "LegacyMultiProc"}
_CRASH_PREFIX = "crash-"


class WorkflowError(Exception):
    """A Nipype node failed; the message names the node(s) and crash file(s)."""


# ----------------------------------------------------------------------------- settings


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def build_settings(namespace: Any, argv: Sequence[str] | None = None) -> Settings:
    """Turn the parsed options into :class:`Settings`, checking how they fit together.

    Raises
    ------
    InputError
        OUTPUT_DIR equal to BIDS_DIR or to its ``derivatives`` folder, or inside it but not
        under that folder, a work directory inside BIDS_DIR, more OpenMP
        threads than processes, a --suvr-window that ends before it starts.
    """
    bids_dir = namespace.bids_dir.expanduser().resolve()
    output_dir = namespace.output_dir.expanduser().resolve()
    if output_dir == bids_dir:
        raise InputError(f"{output_dir}: OUTPUT_DIR is BIDS_DIR; write derivatives elsewhere, "
                         "e.g. BIDS_DIR/derivatives/tspo-bids")
    if _is_within(output_dir, bids_dir) and not output_dir.is_relative_to(bids_dir / "derivatives"):
        raise InputError(f"{output_dir}: OUTPUT_DIR is inside BIDS_DIR but not under BIDS_DIR/derivatives; "
                         "derivatives elsewhere in a raw dataset make it invalid (e.g. use "
                         f"{bids_dir / 'derivatives' / 'tspo-bids'})")
    work_dir = (namespace.work_dir.expanduser() if namespace.work_dir else Path.cwd() / "work").resolve()
    if output_dir == bids_dir / "derivatives":
        raise InputError(f"{output_dir}: OUTPUT_DIR is BIDS_DIR/derivatives itself, which holds one folder per "
                         f"pipeline; use {bids_dir / 'derivatives' / 'tspo-bids'}")
    if _is_within(work_dir, bids_dir):
        raise InputError(f"{work_dir}: the work directory is inside BIDS_DIR {bids_dir}; "
                         "choose another with -w/--work-dir")
    if _is_within(bids_dir, output_dir):
        raise InputError(f"{output_dir}: OUTPUT_DIR contains BIDS_DIR {bids_dir}; choose another OUTPUT_DIR")

    nprocs = namespace.nprocs or _cpu_count()
    omp_nthreads = namespace.omp_nthreads or max(1, min(8, nprocs - 1))
    if omp_nthreads > nprocs:
        raise InputError(f"--omp-nthreads {omp_nthreads}: more threads per process than --nprocs {nprocs}")
    plugin = _plugin_settings(namespace.plugin, nprocs, namespace.mem_gb)
    window = tuple(namespace.suvr_window_min) if namespace.suvr_window_min else None
    if window is not None and not window[1] > window[0]:
        raise InputError(f"--suvr-window {window[0]:g} {window[1]:g}: END must be after START (minutes)")
    pvc_psf = _pvc_psf(namespace.pvc, namespace.pvc_psf)
    svca_classes = _svca_classes(namespace)
    derivatives = {}
    for name, path in namespace.derivatives or []:
        if name in derivatives and derivatives[name] != path:
            raise InputError(f"-d {name}: given twice ({derivatives[name]}, {path})")
        derivatives[name] = path
    argv = list(sys.argv[1:] if argv is None else argv)
    return Settings(
        bids_dir=bids_dir,
        output_dir=output_dir,
        analysis_level=namespace.analysis_level,
        work_dir=work_dir,
        participant_label=tuple(dict.fromkeys(namespace.participant_label)) if namespace.participant_label else None,
        session_label=tuple(dict.fromkeys(namespace.session_label)) if namespace.session_label else None,
        tracer_label=tuple(dict.fromkeys(namespace.tracer_label)) if namespace.tracer_label else None,
        bids_filter=ReadOnlyDict(namespace.bids_filter) if namespace.bids_filter else None,
        derivatives=ReadOnlyDict(derivatives),
        skip_bids_validation=namespace.skip_bids_validation,
        nprocs=nprocs,
        omp_nthreads=omp_nthreads,
        mem_gb=namespace.mem_gb,
        plugin=ReadOnlyDict(plugin),
        stop_on_first_crash=namespace.stop_on_first_crash,
        tracer=namespace.tracer,
        ref_region=namespace.ref_region,
        svca_classes=svca_classes,
        build_svca_classes=bool(getattr(namespace, "build_svca_classes", False)),
        models=tuple(dict.fromkeys(namespace.models)),
        t_star_min=namespace.t_star_min,
        suvr_window_min=window,
        lesion_min_volume_mm3=namespace.lesion_min_volume_mm3,
        control_group=namespace.control_group,
        active_percentile=namespace.active_percentile,
        active_fraction=namespace.active_fraction,
        rim_active_min=namespace.rim_active_min,
        inactive_max=namespace.inactive_max,
        pvc=namespace.pvc,
        pvc_psf_mm=pvc_psf,
        random_seed=namespace.random_seed,
        verbose=namespace.verbose,
        command_line=shlex.join(["tspo-bids", *argv]),
    )


def _pvc_psf(method: str, fwhm: Sequence[str] | None) -> tuple[float, float, float] | None:
    """Check --pvc and --pvc-psf together; return the PSF FWHM (x, y, z) in mm, or None."""
    from tspo_bids.pvc.psf import validate_psf

    if method == "none":
        if fwhm:
            raise InputError(f"--pvc-psf {' '.join(fwhm)}: given without --pvc; add --pvc gtm or --pvc rbv")
        return None
    if not fwhm:
        raise InputError(f"--pvc {method}: needs the scanner's point-spread function; add --pvc-psf FWHM "
                         "(one value or three, mm)")
    return validate_psf(list(fwhm))


def _svca_classes(namespace: Any) -> Path | None:
    """``--svca-classes`` as an absolute path, checked against ``--ref-region``, the level and its content."""
    path = getattr(namespace, "svca_classes", None)
    if getattr(namespace, "build_svca_classes", False) and namespace.analysis_level != "group":
        raise InputError("--build-svca-classes: a group-level option; run 'tspo-bids BIDS_DIR OUTPUT_DIR group "
                         "--build-svca-classes'")
    if path is None:
        return None
    if namespace.ref_region != "svca":
        raise InputError(f"--svca-classes {path}: given without --ref-region svca; add --ref-region svca")
    from tspo_bids.interfaces.svca import read_class_table

    path = path.expanduser().resolve()
    read_class_table(path)
    return path


def _plugin_settings(from_file: dict[str, Any] | None, nprocs: int, mem_gb: float | None) -> dict[str, Any]:
    """Nipype plugin and arguments: the --use-plugin file, else MultiProc (Linear for one process)."""
    if from_file is None:
        name = "Linear" if nprocs == 1 else "MultiProc"
        args: dict[str, Any] = {}
    else:
        name = from_file["plugin"]
        args = dict(from_file.get("plugin_args") or {})
    if name in ("MultiProc", "LegacyMultiProc"):
        args.setdefault("n_procs", nprocs)
        args.setdefault("raise_insufficient", False)
        if mem_gb is not None:
            args.setdefault("memory_gb", mem_gb)
    return {"plugin": name, "plugin_args": args}


# ----------------------------------------------------------------------------- logging


def _log_name(settings: Settings) -> str:
    if settings.analysis_level == "group":
        stem = "group"
    elif settings.participant_label and len(settings.participant_label) == 1:
        stem = f"sub-{settings.participant_label[0]}"
        if settings.session_label and len(settings.session_label) == 1:
            stem += f"_ses-{settings.session_label[0]}"
    elif settings.participant_label:
        stem = f"sub-{settings.participant_label[0]}+{len(settings.participant_label) - 1}more"
    else:
        stem = "all"
    return f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"


def setup_logging(verbose: int, log_dir: Path | None, settings: Settings | None = None) -> Path | None:
    """Console (stderr) and per-process file logging for tspo-bids and Nipype.

    Without ``-v`` the console shows tspo-bids' progress lines and warnings, and nothing of
    Nipype (a failed node is reported in one line by :func:`main`); ``-v`` adds info and
    Nipype's node-by-node messages, ``-vv`` debug. Everything goes to stderr (Nipype's own
    stdout handler is replaced). The log file ``<log_dir>/<sub>[_ses]_<timestamp>_<pid>.log``
    gets everything at info level (debug with ``-vv``) and is unique per process, so
    concurrent participant jobs never write into the same file.
    """
    console_level = PROGRESS if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    file_level = logging.DEBUG if verbose >= 2 else logging.INFO
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    package = logging.getLogger("tspo_bids")
    package.setLevel(logging.DEBUG)
    for handler in list(package.handlers):
        if getattr(handler, "_tspo_bids", False):
            package.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%H:%M:%S"))
    console._tspo_bids = True  # type: ignore[attr-defined]
    package.addHandler(console)

    log_file = None
    nipype = logging.getLogger("nipype")
    for handler in list(nipype.handlers):
        ours = getattr(handler, "_tspo_bids", False)
        nipype_console = type(handler) is logging.StreamHandler  # Nipype's own, on stdout
        if ours or nipype_console:
            nipype.removeHandler(handler)
            if ours:
                handler.close()
    if verbose >= 1:
        nipype.addHandler(console)
    else:
        silent = logging.NullHandler()  # also keeps Nipype, if imported later, from adding its stdout handler
        silent._tspo_bids = True  # type: ignore[attr-defined]
        nipype.addHandler(silent)
    if log_dir is not None and settings is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = _log_name(settings)
        log_file = log_dir / f"{stem}.log"
        for count in range(1, 1000):  # the pid makes it unique across processes; this, within one
            try:
                log_file.touch(exist_ok=False)
                break
            except FileExistsError:
                log_file = log_dir / f"{stem}-{count}.log"
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(file_level)
        file_handler.setFormatter(formatter)
        file_handler._tspo_bids = True  # type: ignore[attr-defined]
        package.addHandler(file_handler)
        nipype.addHandler(file_handler)
    return log_file


_EXECUTION_CONFIG: dict[str, Any] = {
    "crashfile_format": "txt",
    "poll_sleep_duration": 0.1,  # MultiProc's default 2 s makes small graphs crawl
    "create_report": False,  # would write shared files in the top workflow's work folder
    "get_linked_libs": False,
    "check_version": False,
}


def _configure_nipype(settings: Settings, crash_dir: Path) -> None:
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    level = "WARNING" if settings.verbose == 0 else "INFO" if settings.verbose == 1 else "DEBUG"
    nipype_config.update_config({
        "logging": {"workflow_level": level, "interface_level": level, "utils_level": "WARNING",
                    "log_to_file": False},
        "execution": _EXECUTION_CONFIG | {"crashdump_dir": str(crash_dir),
                                          "stop_on_first_crash": settings.stop_on_first_crash},
        "monitoring": {"enabled": False},
    })
    nipype_logging.update_logging(nipype_config)


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class _Crash:
    node: str
    reason: str
    path: Path


def _read_crash(path: Path) -> _Crash:
    node, reason = path.name, ""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return _Crash(node, reason, path)
    for line in lines:
        if line.startswith("Node: "):
            node = line.removeprefix("Node: ").strip()
            break
    trailer = next((i for i, line in enumerate(lines) if line.startswith("When creating this crashfile")), len(lines))
    last = [line.strip() for line in lines[:trailer] if line.strip()]  # without Nipype's "no results file" note
    if last:
        reason = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=\w+:)", "", last[-1])  # "pkg.mod.Error: x" -> "Error: x"
    return _Crash(node, reason[:300], path)


def workflow_failure_message(crash_dir: Path) -> str:
    """One line naming the failed node(s), the first reason and the crash file(s)."""
    paths = sorted(crash_dir.glob(f"{_CRASH_PREFIX}*"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    crashes = [_read_crash(p) for p in paths]  # first failure first
    if not crashes:
        return f"the workflow did not finish; no crash file in {crash_dir} (see the log)"
    nodes = ", ".join(dict.fromkeys(c.node for c in crashes))
    files = ", ".join(str(c.path) for c in crashes)
    reason = f" ({crashes[0].reason})" if crashes[0].reason else ""
    return f"{len(crashes)} node(s) failed: {nodes}{reason}; crash file(s): {files}"


def run_workflow(workflow: Any, settings: Settings) -> None:
    """Run a Nipype workflow in the work directory with the configured plugin.

    Raises
    ------
    WorkflowError
        When a node fails (message names the nodes and crash files).
    """
    crash_dir = settings.work_dir / "crash" / f"{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"
    _configure_nipype(settings, crash_dir)
    plugin = settings.plugin["plugin"]
    plugin_args = dict(settings.plugin.get("plugin_args") or {})
    if plugin not in _LOCAL_PLUGINS:
        os.environ.setdefault("LOGNAME", f"uid{os.getuid()}")  # SLURM/SGE plugins read it
    # ITK (ANTs) reads its thread count once per process, at first use: set it before any node
    # runs so every worker (forked, or a cluster job inheriting the environment) uses the same
    # count. With one thread per process, registrations, and so all derivatives, are reproducible.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(settings.omp_nthreads)
    workflow.base_dir = str(settings.work_dir)
    # The workflow copied Nipype's global config when it was built: set ours on it too.
    workflow.config.setdefault("execution", {}).update(_EXECUTION_CONFIG | {
        "crashdump_dir": str(crash_dir), "stop_on_first_crash": settings.stop_on_first_crash})
    LOGGER.log(PROGRESS, "running %s with %s %s (work directory %s)", workflow.name, plugin, plugin_args,
               settings.work_dir)
    from tspo_bids.cli.plugin import GuardedMultiProcPlugin

    try:
        if plugin == "MultiProc":  # the same, but a worker killed (out of memory) fails its node instead of hanging
            workflow.run(plugin=GuardedMultiProcPlugin(plugin_args=plugin_args))
        else:
            workflow.run(plugin=plugin, plugin_args=plugin_args)
    except RuntimeError as error:
        if crash_dir.is_dir() and any(crash_dir.glob(f"{_CRASH_PREFIX}*")):
            raise WorkflowError(workflow_failure_message(crash_dir)) from error
        if "did not execute cleanly" in str(error) or "Workflow did not" in str(error):
            raise WorkflowError(workflow_failure_message(crash_dir)) from error
        raise


def _check_tracers(runs: Sequence[Any], settings: Settings) -> None:
    from tspo_bids.kinetics import FrameTiming

    problems = []
    for run in runs:
        timing = FrameTiming.from_bids(run.metadata)  # discovery checked the sidecar's timing
        try:
            settings.for_tracer(run.metadata.get("TracerName"), source=str(run.sidecar_file),
                                frame_start_min=timing.start_min, frame_end_min=timing.end_min)
        except InputError as error:
            problems.append(str(error))
    if problems:
        raise InputError("; ".join(problems))


def run_participant(settings: Settings) -> None:
    """Validate and discover the inputs, write dataset_description.json, run the workflow."""
    from tspo_bids.bids.derivatives import write_dataset_description
    from tspo_bids.bids.discovery import check_bids_root, discover_pet_runs
    from tspo_bids.bids.validation import validate_bids

    started = time.monotonic()
    check_bids_root(settings.bids_dir)
    runs = discover_pet_runs(
        settings.bids_dir,
        participant_label=settings.participant_label,
        session_label=settings.session_label,
        tracer_label=settings.tracer_label,
        bids_filter=settings.bids_filter,
        ignore=(settings.output_dir, settings.work_dir),
        derivatives=settings.derivatives,
    )
    _check_tracers(runs, settings)
    if settings.ref_region == "svca":
        from tspo_bids.workflows.group_svca import check_classes_files

        check_classes_files(settings, [run.tracer for run in runs])
    from tspo_bids.bids.derivatives import check_output_reference
    from tspo_bids.workflows.participant import settings_reference

    check_output_reference(settings.output_dir, settings_reference(settings))
    if not settings.skip_bids_validation:  # after our own checks, whose messages are more specific
        validate_bids(settings.bids_dir, settings.participant_label)
    LOGGER.log(PROGRESS, "found %d PET run(s): %s (%.1f s)", len(runs), ", ".join(r.label for r in runs),
               time.monotonic() - started)
    try:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{settings.work_dir}: cannot create the work directory ({error.strerror}); "
                         "choose another with -w/--work-dir") from error
    from tspo_bids.cli.workdir import check_work_dir_build

    check_work_dir_build(settings.work_dir)
    write_dataset_description(settings.output_dir, settings.bids_dir, settings)
    from tspo_bids.workflows.base import init_tspo_wf

    workflow = init_tspo_wf(runs, settings)
    run_workflow(workflow, settings)
    LOGGER.log(PROGRESS, "participant level finished in %.0f s: derivatives in %s", time.monotonic() - started,
               settings.output_dir)


def run_group_level(settings: Settings) -> None:
    """Check the participant outputs exist and run the group level."""
    from tspo_bids.bids.discovery import check_bids_root

    check_bids_root(settings.bids_dir)
    if not (settings.output_dir / "dataset_description.json").is_file():
        raise InputError(f"{settings.output_dir}: no tspo-bids derivatives here (no dataset_description.json); "
                         "run the participant level first")
    from tspo_bids.workflows.group import run_group

    run_group(settings)
    LOGGER.log(PROGRESS, "group level finished: %s", settings.output_dir / "group")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tspo-bids``; returns the exit code (see module docstring)."""
    from tspo_bids.cli.parser import parse_args

    os.environ.setdefault("NIPYPE_NO_ET", "1")  # no online version check (offline clusters, containers)
    try:
        namespace = parse_args(argv)
    except SystemExit as stop:  # --help, --version (0) and usage errors (2)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    setup_logging(namespace.verbose, None)
    previous_handlers = _exit_cleanly_on_signals()
    try:
        return _run(namespace, argv)
    finally:
        for signum, previous in previous_handlers.items():
            signal.signal(signum, previous)


def _run(namespace: Any, argv: Sequence[str] | None) -> int:
    """Settings, logging and the chosen analysis level; every failure becomes one line (see module docstring)."""
    try:
        settings = build_settings(namespace, argv)
        if not settings.bids_dir.is_dir():  # before OUTPUT_DIR and its logs are created for a mistyped path
            raise InputError(f"{settings.bids_dir}: BIDS_DIR does not exist or is not a directory")
        try:
            settings.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"{settings.output_dir}: cannot create OUTPUT_DIR ({error.strerror})") from error
        log_file = setup_logging(settings.verbose, settings.output_dir / "logs", settings)
        LOGGER.info("tspo-bids %s: %s", __version__, settings.command_line)
        LOGGER.info("log file: %s", log_file)
        if settings.analysis_level == "participant":
            run_participant(settings)
        else:
            run_group_level(settings)
    except (InputError, WorkflowError, Terminated) as error:
        if _STOP_SIGNAL is not None:  # also when Nipype caught it inside a node and reported a node failure
            for child in multiprocessing.active_children():  # MultiProc workers still busy with a node
                child.terminate()
            cause = "SIGTERM (a time limit or 'docker stop')" if _STOP_SIGNAL == signal.SIGTERM else "Ctrl-C"
            _fail(f"stopped by {cause}; every derivative written so far is complete; "
                  "run the same command again to resume from the work directory")
            return 128 + _STOP_SIGNAL
        return _fail(str(error))
    except OSError as error:  # the environment, not the data: read-only or full disk, permissions
        where = f"{error.filename}: " if error.filename else ""
        return _fail(f"{where}{error.strerror or error} ({type(error).__name__})")
    except Exception as error:  # a bug: one line for the user, the traceback for the report
        record = LOGGER.makeRecord(LOGGER.name, logging.ERROR, __file__, 0, "unexpected error", None, sys.exc_info())
        for handler in LOGGER.handlers:  # the log file, and the console with -vv
            if isinstance(handler, logging.FileHandler) or handler.level <= logging.DEBUG:
                handler.handle(record)
        return _fail(f"unexpected {type(error).__name__}: {error} -- this is a bug in tspo-bids {__version__}; "
                     "please report it with the traceback from the log file (OUTPUT_DIR/logs) or from -vv")
    return 0


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived in the main process (raised by the handler of :func:`_exit_cleanly_on_signals`)."""


#: The stop signal received by the main process during this run (None: none).
_STOP_SIGNAL: int | None = None


def _exit_cleanly_on_signals() -> dict[int, Any]:
    """Turn SIGTERM and SIGINT in this process into :class:`Terminated`; forked workers keep the default.

    Nipype's MultiProc workers are forked from this process and inherit the handler: in them it
    restores the default action and re-sends the signal, so they stop as before. Returns the
    previous handlers (empty outside the main thread, where no handler can be set).
    """
    global _STOP_SIGNAL
    _STOP_SIGNAL = None
    if threading.current_thread() is not threading.main_thread():
        return {}
    main_pid = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        global _STOP_SIGNAL
        _STOP_SIGNAL = signum
        raise Terminated()

    return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}


def _fail(message: str) -> int:
    line = " ".join(message.split())  # one line, whatever the message held
    record = LOGGER.makeRecord(LOGGER.name, logging.ERROR, __file__, 0, line, None, None)
    for handler in LOGGER.handlers:
        if isinstance(handler, logging.FileHandler):  # the console gets the line below instead
            handler.handle(record)
    print(f"tspo-bids: error: {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
