import json

import pytest

from cellclf_utils import cli


def test_data_check_reports_bad_files(tmp_path, small_dataset, capsys):
    (small_dataset / "beta" / "broken.png").write_text("nope")
    assert cli.main(["data", "check", str(small_dataset)]) == 1
    out = capsys.readouterr().out
    assert "broken.png: not a decodable image" in out
    assert "alpha" in out and "6" in out
    (small_dataset / "beta" / "broken.png").unlink()
    assert cli.main(["data", "check", str(small_dataset), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["counts"] == {"alpha": 6, "beta": 6} and rep["n_test"] == 4


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert cli.main(["data", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cellclf: parameter 'data_dir'") and "Traceback" not in err


def test_run_refuses_unknown_profile_and_stage(capsys):
    assert cli.main(["run", "--profile", "nope"]) == 1
    assert "no such profile" in capsys.readouterr().err
    assert cli.main(["run", "--profile", "smoke", "--only", "42"]) == 1
    assert "--only: unknown stage '42'" in capsys.readouterr().err


def test_params_lists_defaults_and_allowed_values_by_any_stage_name(capsys):
    assert cli.main(["params", "02_baseline_cnn"]) == 0
    out = capsys.readouterr().out
    assert "sgd, adam" in out and next(ln for ln in out.splitlines() if ln.startswith("optimizer ")).split()[1] == "'adam'"
    for name in ("03", "xception", "03_xception"):
        assert cli.main(["params", name]) == 0
        assert "'xception'" in capsys.readouterr().out
    assert cli.main(["params", "nine"]) == 2
    err = capsys.readouterr().err
    assert "unknown stage 'nine'" in err and "Traceback" not in err


def test_version(capsys):
    import pytest
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("cellclf 0.")


def test_a_bad_value_fails_before_anything_is_written(small_dataset, tmp_path, monkeypatch, capsys):
    """Every stage's values are checked before a kernel starts: seconds, and no run left behind;
    a run id that climbs out of runs/ writes nothing anywhere (the whole tree listed before and after)."""
    runs = tmp_path / "a" / "b" / "runs"
    monkeypatch.setenv("CELLCLF_RUNS", str(runs))
    before = sorted(tmp_path.rglob("*"))
    for p, words in ((["-p", "optimizer", "rmsprop"], "parameter 'optimizer' must be one of sgd, adam, adamw"),
                     (["-p", "epochs", "0"], "parameter 'epochs' must be > 0"),
                     (["-p", "weights", "no/such.weights.h5"], "parameter 'weights' must be imagenet, auto, none or"),
                     (["--run-id", "../../outside"], "parameter 'run_id' must be letters, digits")):
        assert cli.main(["run", "--profile", "smoke", "--data", str(small_dataset), "--run-id", "bad", *p]) == 1
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
    assert not runs.exists() and sorted(tmp_path.rglob("*")) == before


def test_run_refuses_a_parameter_no_stage_has(capsys):
    assert cli.main(["run", "--profile", "smoke", "-p", "lrr", "0.1"]) == 1
    assert "parameter(s) lrr are not parameters of any notebook" in capsys.readouterr().err


def test_synth_then_if_missing_keeps_it(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["data", "synth", str(out), "--size", "32", "--n-train-per-class", "3", "--n-test-per-class", "1", "--quiet"]
    assert cli.main(args) == 0
    files = sorted(p.name for p in out.rglob("*.jpg"))
    assert len(files) == 12
    assert cli.main(args + ["--if-missing"]) == 0
    assert "keeping it" in capsys.readouterr().out
    assert cli.main(args) == 2  # never overwrites a dataset
    assert "cellclf:" in capsys.readouterr().err


def test_synth_any_number_of_classes(tmp_path):
    out = tmp_path / "s5"
    assert cli.main(["data", "synth", str(out), "--size", "32", "--n-train-per-class", "2", "--n-test-per-class", "1",
                     "--n-classes", "5", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "test") == \
        ["grade_1", "grade_2", "grade_3", "grade_4", "normal"]
    assert len(list((out / "test").glob("*.jpg"))) == 5
    assert cli.main(["data", "synth", str(tmp_path / "s1"), "--n-classes", "1", "--quiet"]) == 2


def test_profile_stage_sections_are_checked(tmp_path, capsys):
    prof = tmp_path / "p.yaml"
    prof.write_text("profile: custom\nepochs: 1\nstages:\n  01_eda_colour:\n    epochs: 3\n")
    assert cli.main(["run", "--profile", str(prof)]) == 1
    assert "epochs are not parameters of 01_eda_colour" in capsys.readouterr().err
    prof.write_text("profile: custom\nstages:\n  09_nothing:\n    epochs: 3\n")
    assert cli.main(["run", "--profile", str(prof)]) == 1
    assert "stages.09_nothing names no notebook" in capsys.readouterr().err


def test_a_dead_kernel_names_the_stage_and_how_to_resume(tmp_path, monkeypatch):
    """A kernel killed mid-stage (out of memory, kill -9) gives the stage and the resume
    command, not papermill's bare 'Kernel died'."""
    import nbformat as nbf
    import pytest
    from cellclf_utils.run import notebook, runner

    root = tmp_path / "project"
    (root / "notebooks" / "profiles").mkdir(parents=True)
    (root / "notebooks" / "profiles" / "quick.yaml").write_text("profile: quick\n")
    nb = nbf.v4.new_notebook()
    params = nbf.v4.new_code_cell('profile = ""\nrun_id = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbf.v4.new_code_cell("import os\nos._exit(9)")]
    nb.metadata["kernelspec"] = {"name": notebook.KERNEL, "display_name": "cellclf", "language": "python"}
    nbf.write(nb, root / "notebooks" / "01_eda_colour.ipynb")
    monkeypatch.setenv("CELLCLF_ROOT", str(root))
    with pytest.raises(runner.RunError, match=r"(?s)01_eda_colour: its kernel died.*--run-id doomed.*--resume"):
        runner.run_series("quick", run_id="doomed", progress=False)


def _finished_stage(run_dir, name, **metrics):
    (run_dir / name / "fold0").mkdir(parents=True)
    (run_dir / name / "metrics.json").write_text(json.dumps({"kind": "model", "classes": ["a", "b"], **metrics}))
    (run_dir / name / "params.json").write_text(json.dumps({"image_size": 16}))


def test_predict_and_export_name_what_they_cannot_use(tmp_path, small_dataset, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["predict", str(tmp_path / "norun"), str(small_dataset)]) == 2
    assert "no run folder" in capsys.readouterr().err
    run_dir = tmp_path / "runs" / "old"
    _finished_stage(run_dir, "02_baseline_cnn", cv={"accuracy": 0.5})
    # a stage trained before stages kept their models
    assert cli.main(["predict", str(run_dir), str(small_dataset)]) == 2
    err = capsys.readouterr().err
    assert "stage 02_baseline_cnn of run old holds no saved fold models" in err and "Traceback" not in err
    assert cli.main(["predict", str(run_dir), str(small_dataset), "--stage", "03"]) == 2
    assert "stage 03_xception of run old is not finished; finished stages: 02_baseline_cnn" in capsys.readouterr().err
    (tmp_path / "preds.csv").write_text("mine")
    assert cli.main(["predict", str(run_dir), str(small_dataset)]) == 2
    assert "preds.csv exists: pass another --out, or --overwrite" in capsys.readouterr().err
    assert (tmp_path / "preds.csv").read_text() == "mine"
    inside = run_dir / "02_baseline_cnn" / "preds.csv"
    assert cli.main(["predict", str(run_dir), str(small_dataset), "--out", str(inside)]) == 2
    assert "is inside the run folder" in capsys.readouterr().err and not inside.exists()
    assert cli.main(["export", str(run_dir), "--out", str(tmp_path / "bundle")]) == 2
    assert "holds no saved fold models" in capsys.readouterr().err and not (tmp_path / "bundle").exists()


def _project(tmp_path, monkeypatch, code: str, profile: str = "profile: quick\n"):
    """A checkout whose series is one notebook (01_eda_colour) running ``code``; runs go to tmp/runs."""
    import nbformat as nbf
    from cellclf_utils.run import notebook, runner
    root = tmp_path / "project"
    (root / "notebooks" / "profiles").mkdir(parents=True)
    (root / "notebooks" / "profiles" / "quick.yaml").write_text(profile)
    nb = nbf.v4.new_notebook()
    params = nbf.v4.new_code_cell('profile = ""\nrun_id = ""\ndata_dir = ""\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbf.v4.new_code_cell("import json, os, pathlib, time\n"
                                             "d = pathlib.Path(os.environ['CELLCLF_RUNS']) / run_id / '01_eda_colour'\n"
                                             + code)]
    nb.metadata["kernelspec"] = {"name": notebook.KERNEL, "display_name": "cellclf", "language": "python"}
    nbf.write(nb, root / "notebooks" / "01_eda_colour.ipynb")
    monkeypatch.setenv("CELLCLF_ROOT", str(root))
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


FINISH = "(d / 'metrics.json').write_text(json.dumps({'kind': 'skipped', 'note': f'{seed} {data_dir}'}))"


def test_resume_is_one_command_the_run_recorded_the_rest(tmp_path, small_dataset, monkeypatch, capsys):
    """A failed run prints `cellclf run --run-id X --resume`; run as printed, it continues with the
    data, classes and -p values the run was started with (and refuses other ones)."""
    runs = _project(tmp_path, monkeypatch, "if not (d.parent / 'go').exists():\n    raise RuntimeError('not yet')\n"
                    + FINISH, "profile: quick\nstages:\n  01_eda_colour: {seed: 1}\n")
    started = ["run", "--run-id", "again", "--data", str(small_dataset), "-p", "seed", "5", "--no-progress-bar"]
    assert cli.main(started) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: not yet" in err and err.rstrip().endswith("continue with: cellclf run --run-id again --resume")
    (runs / "again" / "go").write_text("")
    assert cli.main(["run", "--run-id", "again", "--resume", "--no-progress-bar"]) == 0
    note = json.loads((runs / "again" / "01_eda_colour" / "metrics.json").read_text())["note"]
    assert note == f"5 {small_dataset}"  # the command line's seed beat the profile's section, as at the start
    assert cli.main(["run", "--run-id", "again", "--resume", "-p", "seed", "6", "--no-progress-bar"]) == 1
    assert "exists with other parameters" in capsys.readouterr().err


@pytest.mark.slow
def test_two_runs_on_one_id_never_write_it_together(tmp_path, monkeypatch):
    """While one `cellclf run` writes a run, a second on the same id is refused naming the first
    (pid, start, command); with --wait it waits, then resumes after it. Real processes."""
    import os
    import subprocess
    import time
    from conftest import BIN
    runs = _project(tmp_path, monkeypatch, "while not (d.parent / 'go').exists():\n    time.sleep(0.2)\n" + FINISH)
    cmd = [str(BIN / "cellclf"), "run", "--run-id", "same", "--no-progress-bar"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each line as it is printed
    first = subprocess.Popen(cmd + ["-p", "seed", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    info = runs / "same" / ".lock.json"
    for _ in range(600):
        if (runs / "same" / "01_eda_colour").is_dir():
            break
        time.sleep(0.1)
    holder = json.loads(info.read_text())
    assert holder["pid"] == first.pid and "run --run-id same" in holder["command"]
    second = subprocess.run(cmd + ["-p", "seed", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert f"run same is being written by pid {first.pid}" in second.stderr and "--wait" in second.stderr
    waiting = subprocess.Popen(cmd + ["-p", "seed", "1", "--wait", "--resume"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    said = [waiting.stdout.readline(), waiting.stdout.readline()]  # the run's line, then why it waits
    assert f"run same is being written by pid {first.pid}" in said[1] and "waiting for it (--wait)" in said[1]
    assert waiting.poll() is None  # blocked on the lock
    (runs / "same" / "go").write_text("")
    assert first.wait(timeout=120) == 0, first.stderr.read()[-2000:]
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err[-2000:]
    assert "01_eda_colour: finished earlier, skipped (--resume)" in out
    assert not info.exists()


def test_user_mistakes_and_the_machine_state_are_one_line_each(tmp_path, small_dataset, monkeypatch, capsys):
    """No traceback for a mistake in the input or a folder that cannot be written: one line naming
    the file or parameter, exit status 1 or 2."""
    runs = _project(tmp_path, monkeypatch, FINISH)
    cases = [
        (["run", "-p", "lr", "[0.1"], "-p lr '[0.1': not YAML (line 1, column 5"),
        (["data", "check", str(tmp_path / "bin.csv")], "bin.csv: missing column(s) path, label"),
        (["report", str(tmp_path / "nowhere")], "no run folder"),
        (["plan", "--against", str(tmp_path / "nowhere")], "no run folder"),
    ]
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01garbage\n")
    broken = runs / "broken"
    broken.mkdir(parents=True)
    (broken / "params.yaml").write_text("profile: [quick\n")
    cases.append((["run", "--run-id", "broken", "--resume", "--no-progress-bar"], "params.yaml: not YAML (line 2"))
    for argv, words in cases:
        assert cli.main(argv) in (1, 2), argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
    # a runs folder that cannot be made (a file is in the way): the path and the system's reason
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path / "a-file" / "runs"))
    assert cli.main(["run", "--run-id", "r1", "--no-progress-bar"]) == 2
    err = capsys.readouterr().err
    assert "a-file/runs" in err and "Not a directory" in err and "Traceback" not in err


def test_os_errors_name_the_file_and_what_to_do():
    import errno
    line = cli.os_error_line(PermissionError(errno.EACCES, "Permission denied", "/runs/r1/params.yaml"))
    assert line == ("/runs/r1/params.yaml: Permission denied; check the folder's permissions "
                    "(runs go to $CELLCLF_RUNS when it is set)")
    assert "the disk is full" in cli.os_error_line(OSError(errno.ENOSPC, "No space left on device", "/runs/x"))


def test_a_bug_keeps_its_traceback_with_a_line_saying_so_and_ctrl_c_is_not_one(monkeypatch, small_dataset, capsys):
    import cellclf_utils.data as data

    def broken(*a, **k):
        raise KeyError("internal")
    monkeypatch.setattr(data, "describe", broken)
    assert cli.main(["data", "check", str(small_dataset), "--no-quality"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'internal'" in err and err.rstrip().endswith(cli.BUG_LINE)

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(data, "describe", interrupted)
    assert cli.main(["data", "check", str(small_dataset), "--no-quality"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_every_command_and_option_has_help():
    import argparse
    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in action._choices_actions}
                for name, sub in action.choices.items():
                    missing.extend([f"{' '.join(path)} {name}"] if not helps.get(name) else [])
                    walk(sub, [*path, name])
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    walk(cli.build_parser(), ["cellclf"])
    assert missing == []
