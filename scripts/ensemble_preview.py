"""Score ensembles of finished stages with cellclf_utils.ensemble before the 07 notebook lands:
singles, plain mean, nested-CV weights, nested logistic-regression stacking, nested weights +
class bias, and McNemar against the best single stage. Prints Markdown rows.

usage: KERAS_BACKEND=tensorflow python scripts/ensemble_preview.py RUN_DIR
RUN_DIR holds finished model stages that share one folds.csv (folders or symlinks to them).
"""
import numpy as np, sys
from cellclf_utils import ensemble as E, metrics
m = E.load(sys.argv[1])
P, y, fold, C = m.oof, m.y, m.fold, len(m.classes)
def show(name, p):
    s = metrics.summary(y, p, m.classes, seed=0)
    lo, hi = s["accuracy_ci"]
    print(f"| {name} | {s['accuracy']:.1%} [{lo:.1%}–{hi:.1%}] | {s['macro_auc']:.3f} | " +
          " / ".join(f"{v:.0%}" for v in s["per_class_recall"].values()) + " |")
    return p
print(len(y), m.names)
singles = {n: show(n, P[i]) for i, n in enumerate(m.names)}
mean = show("mean of all", E.combine(P))
w = E.nested(E.fit_weights, lambda w, Q: E.combine(Q, w), P, y, fold); show("weights (nested)", w)
print("weights on all folds", dict(zip(m.names, E.fit_weights(P, y).round(3))))
st = show("LR stacking (nested)", E.nested(E.stack_fit, lambda mdl, Q: E.stack_apply(mdl, Q, C), P, y, fold))
b = show("weights + class bias (nested)", E.nested(lambda Q, yy: (E.fit_weights(Q, yy), E.fit_bias(E.combine(Q, E.fit_weights(Q, yy)), yy)),
                                                 lambda wb, Q: E.apply_bias(E.combine(Q, wb[0]), wb[1]), P, y, fold))
best = max(m.names, key=lambda n: (singles[n].argmax(1) == y).mean())
for name, p in (("mean", mean), ("weights", w), ("stacking", st), ("weights+bias", b)):
    print(name, "vs", best, E.mcnemar(y, p.argmax(1), singles[best].argmax(1)))
