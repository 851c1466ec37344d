"""tspo-bids main(): the participant path with a small stand-in workflow, failures, logs, group level."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from bids_factory import make_bids
from nipype.interfaces.utility import Function
from nipype.pipeline import engine as pe

import tspo_bids.workflows.base as workflows_base
import tspo_bids.workflows.group as workflows_group
from tspo_bids.cli.run import main
from tspo_bids.config import Settings
from tspo_bids.interfaces.bids import DerivativesDataSink


def _write_table(label, fail):
    import os

    if fail == "input":
        from tspo_bids.errors import InputError

        raise InputError(f"{label}_pet.json: FrameDuration has 2 values")
    if fail:
        raise ValueError(f"deliberate failure for {label}")
    path = os.path.abspath(f"{label}_table.tsv")
    with open(path, "w") as handle:
        handle.write(f"region\tBPND\n{label}\t0.5\n")
    return path


def _stand_in_wf(runs, settings, fail_label=None):
    """Per run: a Function node writing a TSV, and a DerivativesDataSink (same shape as the real graph)."""
    workflow = pe.Workflow(name="tspo_bids_wf")
    for run in runs:
        sub = pe.Workflow(name=f"{run.label.replace('-', '_')}_wf")
        table = pe.Node(Function(input_names=["label", "fail"], output_names=["path"], function=_write_table),
                        name="table")
        table.inputs.label = run.label.replace("-", "").replace("_", "")
        table.inputs.fail = (fail_label == run.label) or (fail_label == "input" and "input")
        sink = pe.Node(DerivativesDataSink(base_directory=str(settings.output_dir), source_file=str(run.pet_file),
                                           datatype="pet", suffix="kinpar", model="SRTM",
                                           meta_dict={"CommandLine": settings.command_line}),
                       name="ds_kinpar", run_without_submitting=True)
        sub.connect(table, "path", sink, "in_file")
        workflow.add_nodes([sub])
    return workflow


@pytest.fixture()
def dataset(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_bids(tmp_path / "bids", subjects=["01", "02"], sessions=["baseline"])


@pytest.fixture()
def calls(monkeypatch):
    seen: list[tuple[list, Settings]] = []

    def fake(runs, settings, fail_label=None):
        seen.append((list(runs), settings))
        return _stand_in_wf(runs, settings, fail_label=getattr(fake, "fail_label", None))

    monkeypatch.setattr(workflows_base, "init_tspo_wf", fake)
    return fake, seen


@pytest.mark.parametrize("nprocs", ["1", "2"])
def test_participant_success(dataset, tmp_path, capsys, calls, nprocs):
    _, seen = calls
    out, work = tmp_path / "out", tmp_path / "w"
    code = main([str(dataset), str(out), "participant", "--skip-bids-validation", "-w", str(work),
                 "--nprocs", nprocs, "--participant-label", "01"])
    assert code == 0, capsys.readouterr().err
    runs, settings = seen[0]
    assert [r.label for r in runs] == ["sub-01_ses-baseline"]
    assert settings.work_dir == work and settings.output_dir == out
    assert settings.plugin["plugin"] == ("Linear" if nprocs == "1" else "MultiProc")
    table = out / "sub-01/ses-baseline/pet/sub-01_ses-baseline_model-SRTM_kinpar.tsv"
    assert table.read_text() == "region\tBPND\nsub01sesbaseline\t0.5\n"
    assert "--participant-label 01" in json.loads(table.with_suffix(".json").read_text())["CommandLine"]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    logs = list((out / "logs").glob("sub-01_*.log"))
    assert len(logs) == 1 and "tspo-bids" in logs[0].read_text()
    assert (work / "tspo_bids_wf" / "sub_01_ses_baseline_wf").is_dir()  # the work dir holds the graph
    assert not (work / "tspo_bids_wf" / "d3.js").exists()  # no shared report files at the top level


def test_rerun_resumes(dataset, tmp_path, calls):
    out, work = tmp_path / "out", tmp_path / "w"
    argv = [str(dataset), str(out), "participant", "--skip-bids-validation", "-w", str(work), "--nprocs", "1"]
    assert main(argv) == 0
    result = work / "tspo_bids_wf/sub_02_ses_baseline_wf/table/sub02sesbaseline_table.tsv"
    first = result.stat().st_mtime_ns
    assert main(argv) == 0
    assert result.stat().st_mtime_ns == first  # finished node not recomputed
    assert len(list((out / "logs").glob("all_*.log"))) == 2  # one log per process


@pytest.mark.parametrize("nprocs", ["1", "2"])
def test_failed_node_one_line(dataset, tmp_path, capsys, calls, nprocs):
    fake, _ = calls
    fake.fail_label = "sub-02_ses-baseline"
    work = tmp_path / "w"
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", "-w", str(work),
                 "--nprocs", nprocs])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 1
    errors = [line for line in lines if line.startswith("tspo-bids: error: ")]
    assert len(errors) == 1 and errors == [lines[-1]]
    assert "Traceback" not in captured.err + captured.out  # without -v, Nipype's crash report stays in the files
    line = errors[0]
    assert "1 node(s) failed: tspo_bids_wf.sub_02_ses_baseline_wf.table" in line
    assert "ValueError: deliberate failure for sub02sesbaseline" in line
    crash = Path(line.split("crash file(s): ")[1])
    assert crash.is_file() and crash.is_relative_to(work / "crash")
    # the other run still finished (no --stop-on-first-crash)
    assert (tmp_path / "out/sub-01/ses-baseline/pet/sub-01_ses-baseline_model-SRTM_kinpar.tsv").is_file()
    log = next((tmp_path / "out/logs").glob("all_*.log")).read_text()
    assert "ERROR: 1 node(s) failed" in log


def test_verbose_logging_goes_to_stderr(dataset, tmp_path, capsys, calls):
    assert main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "-w", str(tmp_path / "w"), "--nprocs", "1", "-v"]) == 0
    captured = capsys.readouterr()
    assert "PET run sub-01_ses-baseline" in captured.err and "found 2 PET run(s)" in captured.err
    assert '[Node] Executing "table"' in captured.err  # Nipype's messages too, on stderr
    assert "nipype" not in captured.out


def test_quiet_by_default(dataset, tmp_path, capsys, calls):
    assert main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "-w", str(tmp_path / "w"), "--nprocs", "1"]) == 0
    captured = capsys.readouterr()
    assert "PET run sub-01" not in captured.err  # info hidden
    assert "found 2 PET run(s)" in captured.err  # progress shown
    assert "Executing" not in captured.err + captured.out  # Nipype quiet


def test_group_level(dataset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_description.json").write_text("{}")
    seen: list[Settings] = []
    monkeypatch.setattr(workflows_group, "run_group", seen.append)
    assert main([str(dataset), str(out), "group", "--participant-label", "sub-02"]) == 0
    assert seen[0].analysis_level == "group" and seen[0].participant_label == ("02",)
    assert len(list((out / "logs").glob("group_*.log"))) == 1
    assert not (tmp_path / "work").exists()  # the group level needs no work directory


def test_logging_handlers_do_not_pile_up(dataset, tmp_path, calls):
    for _ in range(3):
        main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", "-w",
              str(tmp_path / "w"), "--nprocs", "1"])
    ours = [h for h in logging.getLogger("tspo_bids").handlers if getattr(h, "_tspo_bids", False)]
    assert len(ours) == 2  # console + this run's file


def _participant_job(argv, barrier, codes, index):
    barrier.wait()
    codes[index] = main(argv)


def test_concurrent_participant_jobs_share_output_and_work_dir(tmp_path, monkeypatch, calls):
    """4 processes (one participant each) into one OUTPUT_DIR and work dir: all outputs, valid shared files."""
    import multiprocessing

    monkeypatch.chdir(tmp_path)
    dataset = make_bids(tmp_path / "bids", subjects=["01", "02", "03", "04"])
    out, work = tmp_path / "out", tmp_path / "w"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    codes = ctx.Array("i", [-1] * 4)
    jobs = [ctx.Process(target=_participant_job,
                        args=([str(dataset), str(out), "participant", "--skip-bids-validation", "-w", str(work),
                               "--nprocs", "1", "--participant-label", f"0{i + 1}"], barrier, codes, i))
            for i in range(4)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    assert list(codes) == [0, 0, 0, 0]
    for i in range(1, 5):
        table = out / f"sub-0{i}/pet/sub-0{i}_model-SRTM_kinpar.tsv"
        assert table.read_text() == f"region\tBPND\nsub0{i}\t0.5\n"
        assert len(list((out / "logs").glob(f"sub-0{i}_*.log"))) == 1
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".bidsignore",
                                                                                ".dataset_description.lock"]


def test_input_error_inside_a_node_keeps_its_message(dataset, tmp_path, capsys, calls):
    fake, _ = calls
    fake.fail_label = "input"
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", "-w",
                 str(tmp_path / "w"), "--nprocs", "1"])
    line = capsys.readouterr().err.splitlines()[-1]
    assert code == 1
    assert "2 node(s) failed" in line
    assert re.search(r"\(InputError: sub0[12]sesbaseline_pet\.json: FrameDuration has 2 values\); crash file", line)
