"""The series runner's choice of executor, checked before any run folder is made."""
import pytest

from cellclf_utils.run import RunError, runner


def test_the_executor_and_its_share_of_a_card_are_checked_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    with pytest.raises(RunError, match=r"--executor 'dask': use local .* or ray"):
        runner.run_series("smoke", run_id="x1", executor="dask")
    for share in (0.0, 9.0):
        with pytest.raises(RunError, match=rf"--gpus-per-fold {share}: give a share of a card above 0"):
            runner.run_series("smoke", run_id="x1", executor="ray", gpus_per_fold=share)
    assert list(tmp_path.iterdir()) == []


def test_the_resume_command_names_the_executor_and_its_address(tmp_path):
    assert runner._resume_hint(tmp_path / "r1", None, "local", None) == "cellclf run --run-id r1 --resume"
    assert runner._resume_hint(tmp_path / "r1", "03", "ray", "ray://head:10001") == \
        "cellclf run --run-id r1 --resume --only 03 --executor ray --address ray://head:10001"
