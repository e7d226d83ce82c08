"""Knowledge distillation's teachers: stages whose out-of-fold probabilities, averaged, become
part of a fine-tuning stage's training targets (``distill``, ``distill_weight``).

A fold's training images are scored by teacher models that never saw them: out of fold, on the
same folds.csv (checked, as for 07's members). Those teacher models did see the student's
validation fold, so the student's score may keep a little of the teacher's knowledge of it, as
stacking on out-of-fold predictions does."""
from __future__ import annotations

import numpy as np

from ...predict import members as members_mod
from ...runfolder import Run, layout
from ..stage import Stage
from .inputs import TrainingData


class DistillError(ValueError):
    """A teacher stage that cannot teach this stage."""


def _teachers(run: Run, spec: str) -> list[members_mod.Member]:
    chosen = [members_mod.resolve(run, s.strip()) for s in spec.split(",") if s.strip()]
    for m in chosen:
        if not (m.stage.is_finished and m.stage.file(layout.OOF).is_file()):
            raise DistillError(f"distill: {m.label} is not a finished stage with out-of-fold predictions "
                               f"({m.stage.dir}); train it first, or name another stage")
    try:
        members_mod.same_folds(run, chosen)
    except ValueError as e:
        raise DistillError(f"distill: {e}") from None
    return chosen


def soft_targets(st: Stage, P: dict, td: TrainingData) -> np.ndarray | None:
    """Return the teachers' mean out-of-fold probabilities for ``td``'s images, in ``td``'s order
    and classes (None when ``distill`` is empty); DistillError naming what does not fit."""
    spec = P.get("distill", "")
    if not spec.strip():
        return None
    probs = []
    for m in _teachers(Run(st.run_dir), spec):
        oof = m.stage.oof().set_index("id")
        classes = [c[2:] for c in oof.columns if c.startswith("p_")]
        if classes != td.class_names:
            raise DistillError(f"distill: {m.label} predicts classes {classes}, this stage {td.class_names}: "
                               "the teacher must be trained with the same --classes")
        missing = [i for i in td.ids if i not in oof.index]
        if missing:
            raise DistillError(f"distill: {m.label} has no out-of-fold prediction for image {missing[0]!r} "
                               f"({len(missing)} missing); teach with a stage trained on the same images")
        probs.append(oof.loc[td.ids, [f"p_{c}" for c in classes]].to_numpy(np.float32))
    soft = np.mean(probs, axis=0)
    agree = float((soft.argmax(1) == td.y).mean())
    print(f"distill: the mean of {len(probs)} teacher(s) out of fold ({agree:.1%} of the training images "
          f"right) makes {P['distill_weight']:.0%} of each training target")
    return soft
