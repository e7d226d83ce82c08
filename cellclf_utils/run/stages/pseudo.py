"""Stage 06's own steps: each teacher's images, folds and parameters read from the run folder,
the rounds of pseudo-labelling (``train.pseudo.rounds``), and what the stage writes: the
before/after table and figure, and the best student's outputs like any model stage's."""
from __future__ import annotations

import pandas as pd

from ...folds import train_test_duplicates
from ...report import plots
from ...runfolder import layout, open_run
from ...train import pseudo
from ..stage import Stage
from .inputs import TrainingData, load_dataset, training_data
from .models import stage_model
from .outputs import save_model_outputs

NO_TEST_IMAGES = ("Not run: the dataset has no unlabeled test images (no test/ folder) to pseudo-label. "
                  "`cellclf data split` makes a copy with a held-out test/; the ensemble (07) goes on without this stage.")


def pseudo_label(st: Stage, P: dict, teacher: str) -> tuple[TrainingData, object, list[dict], dict]:
    """Retrain finished stage ``teacher`` with pseudo-labelled test images, ``P['rounds']``
    times; return the teacher's images, the last round's CVResult, one row per round and the
    parameters the students trained with (the teacher's, with ``P``'s student noise)."""
    teacher_dir = open_run(st.run_dir).stage(teacher)
    TP = {**teacher_dir.params(), "run_id": P["run_id"]}
    SP = pseudo.student_params(TP, {k: P[k] for k in pseudo.NOISE})
    td = training_data(st, TP)
    if not len(td.x_test):
        raise pseudo.PseudoError("the dataset has no test images to pseudo-label (add a test/ folder, "
                                 "or make one with `cellclf data split`)")
    blocked = pseudo.blocked_by_fold(train_test_duplicates(td.ds), dict(zip(td.ids, td.fold)), td.ds.test_ids)
    settings = {k: P[k] for k in (*pseudo.SETTINGS, "rounds")}
    cv, rows = pseudo.rounds(stage_model(SP, len(td.class_names)), td.x, td.y, td.fold, td.x_test,
                             td.ds.test_labels, td.class_names, SP, settings, teacher_dir, st.dir / teacher, blocked)
    return td, cv, rows, SP


def pseudo_label_teachers(st: Stage, P: dict) -> dict:
    """Return ``{teacher: pseudo_label(...)}`` for the teachers ``P['teacher']`` names (or the
    best trained stage), or {} when the dataset has no unlabeled test images: there is nothing
    to pseudo-label, so the stage says so and finishes as skipped instead of stopping the run."""
    if not len(load_dataset(P).test_ids):
        print(NO_TEST_IMAGES)
        return {}
    return {t: pseudo_label(st, P, t) for t in pseudo.teachers(open_run(st.run_dir), P["teacher"])}


def pseudo_table(st: Stage, results: dict) -> pd.DataFrame:
    """Return one row per teacher and round (out-of-fold and test accuracy before and after,
    pseudo-labels used), written to pseudo_labelling.csv with its before/after figure; an
    empty table when nothing was pseudo-labelled."""
    table = pd.DataFrame([row for _, _, rows, _ in results.values() for row in rows])
    if len(table):
        st.write_csv(layout.PSEUDO_TABLE, table)
        st.figure(plots.before_after(table), "before_after", "Out-of-fold accuracy of each teacher and its student")
    return table


def _settings_text(P: dict) -> str:
    parts = [f"threshold {P['threshold']}"]
    if P["student_augment"]:
        parts.append(f"student augment {P['student_augment']}")
    if P["student_dropout"] != -1:
        parts.append(f"student dropout {P['student_dropout']}")
    return ", ".join(parts)


def save_best_student(st: Stage, results: dict, P: dict) -> dict:
    """Write the best student's (last round, best out-of-fold accuracy) predictions like any
    model stage's and return the metrics for ``st.finish``, with every teacher's rounds under
    ``pseudo``; without results, a ``skipped`` record that says why (07 leaves it out)."""
    if not results:
        return {"kind": "skipped", "title": "Pseudo-labelling", "note": NO_TEST_IMAGES, "pseudo": []}
    best = max(results, key=lambda t: results[t][2][-1]["cv_after"])
    td, cv, _, SP = results[best]
    scores = save_model_outputs(st, td, cv, SP, model_name=f"{best} + pseudo-labels ({_settings_text(P)})")
    last_round = results[best][2][-1]["round"]
    # where the student's fold models are, and whose parameters feed them (`cellclf predict`)
    student = {"folds": f"{best}/{layout.round_dir(last_round)}", "params_of": best}
    return {**scores, "title": "Pseudo-labelling", "student": student,
            "pseudo": [row for _, _, rows, _ in results.values() for row in rows]}
