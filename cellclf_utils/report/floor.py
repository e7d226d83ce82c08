"""The floor a stage must beat: always answering the largest class of the images it was scored
on. A stage whose 95% interval reaches down to that share has learnt nothing the scores can
show, however its point estimate ranks; the report says so in words instead of ranking it."""
from __future__ import annotations

import math


def largest_class(m: dict) -> tuple[str, float] | None:
    """Return (class, share) of the largest true class among the images a stage's out-of-fold
    scores count (its ``cv.confusion`` rows), or None when metrics.json does not say."""
    cv = m.get("cv") if isinstance(m.get("cv"), dict) else {}
    confusion, classes = cv.get("confusion"), m.get("classes")
    try:
        counts = [sum(row) for row in confusion]
    except TypeError:
        return None
    total = sum(counts)
    if not total or not classes or len(classes) != len(counts):
        return None
    i = max(range(len(counts)), key=counts.__getitem__)
    return str(classes[i]), counts[i] / total


def not_distinguishable(m: dict) -> str:
    """Return 'not distinguishable from always answering <class> (<share>)' when the stage's
    out-of-fold 95% interval contains that floor, else ''."""
    floor = largest_class(m)
    ci = (m.get("cv") or {}).get("accuracy_ci") if isinstance(m.get("cv"), dict) else None
    try:
        low = float(ci[0])
    except (TypeError, ValueError, IndexError):
        return ""
    if floor is None or math.isnan(low) or low > floor[1]:
        return ""
    return f"not distinguishable from always answering {floor[0]} ({100 * floor[1]:.1f}%)"
