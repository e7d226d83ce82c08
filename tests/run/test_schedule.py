"""The plan's wall time on N workers: each (stage, fold) job on its own worker, compiling there
unless the stage's first fold already has (the persistent cache); pseudo-labelling after its
teacher, the ensemble after everything."""
import math

import pandas as pd
import pytest

from cellclf_utils.run import schedule

ROWS = [("01_eda_colour", 5, 0.0, 0.0),
        ("03_xception", 5, 105.0, 5.0),            # a fold alone: 100/5 + 5 = 25 s
        ("04_vgg16", 5, 55.0, 5.0),                # 50/5 + 5 = 15 s
        ("06_pseudo_labelling (03_xception)", 5, 30.0, 0.0),  # 6 s a fold, after 03
        ("07_ensemble", 5, 0.0, 0.0)]


def table(rows=ROWS):
    return pd.DataFrame(rows, columns=["stage", "folds", "seconds", "compile_s"])


def test_one_worker_is_the_local_runner_the_plans_sum():
    assert schedule.wall_seconds(table(), 1) == 190.0


@pytest.mark.parametrize("workers, wall", [
    (5, 25 + 15 + 6),   # 03's five folds, then 04's, then the students
    (10, 25 + 6),       # 03 and 04 side by side; the students wait for 03 only
    # two workers, first come first served: 03's first two folds compile (ending 25, 25), the
    # rest load its steps from the cache (45, 45, 65); 04's first fold compiles (45 to 60), the
    # others take 10 s (70, 75, 80, 85); the students, ready at 65, end at 86, 91, 92, 97, 98
    (2, 98.0)])
def test_folds_run_side_by_side_and_wait_for_what_they_need(workers, wall):
    assert schedule.wall_seconds(table(), workers) == pytest.approx(wall)


def test_an_unmeasured_stage_makes_the_wall_unknown_and_zero_workers_is_refused():
    rows = ROWS[:2] + [("02_baseline_cnn", 5, math.nan, math.nan)]
    assert math.isnan(schedule.wall_seconds(table(rows), 4))
    with pytest.raises(ValueError, match="--gpus must be at least 1"):
        schedule.wall_seconds(table(), 0)
