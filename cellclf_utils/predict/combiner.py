"""Stage 07's submitted model on disk: ``combiner.json`` names it (a member stage, or a
combiner of the members) with the values fitted on all out-of-fold predictions, which are
what 07 applied to the test images; ``combiner.skops`` holds a fitted stacking model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_json
from ..runfolder import StageFolder, layout, read_json
from ..shallow import model_files
from . import ensemble

PREFIX = layout.ENSEMBLE_PREFIX


@dataclass
class Combiner:
    submitted: str             # as the leaderboard names it: a member stage, or "ensemble: <combiner>"
    members: list[str]         # member stages, in the order the fitted values follow
    classes: list[str]
    fitted: object             # what ensemble.combiners' apply takes (None for a member or the mean)
    sources: dict = field(default_factory=dict)  # <run_id>/<stage> -> folder, for members of other runs

    @property
    def member(self) -> str | None:
        """The member stage submitted as it is, or None when a combiner was."""
        return None if self.submitted.startswith(PREFIX) else self.submitted

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Return (N, C) probabilities from the members' (M, N, C), in ``members`` order."""
        if self.member is not None:
            return proba[self.members.index(self.member)]
        _, apply = ensemble.combiners(len(self.classes))[self.submitted.removeprefix(PREFIX)]
        return apply(self.fitted, proba)


def save(stage_dir: Path, m: ensemble.Members, choice: str) -> Combiner:
    """Write ``choice``'s combiner.json (and combiner.skops for stacking) into ``stage_dir``."""
    fitted = ensemble.fit_full(m, choice)
    record = {"submitted": choice, "members": m.names, "classes": m.classes, "sources": m.sources}
    kind = choice.removeprefix(PREFIX) if choice.startswith(PREFIX) else None
    if kind == "weights":
        record["weights"] = np.asarray(fitted).tolist()
    elif kind == "weights+bias":
        record["weights"], record["bias"] = np.asarray(fitted[0]).tolist(), np.asarray(fitted[1]).tolist()
    elif kind == "stacking":
        model_files.save(fitted, Path(stage_dir) / layout.COMBINER_STACKER)
    write_json(Path(stage_dir) / layout.COMBINER, record)
    return Combiner(choice, m.names, m.classes, fitted, m.sources)


def load(stage: StageFolder) -> Combiner:
    """Return the combiner 07 saved in ``stage``."""
    r = read_json(stage.file(layout.COMBINER))
    kind = r["submitted"].removeprefix(PREFIX) if r["submitted"].startswith(PREFIX) else None
    fitted = {"weights": lambda: np.asarray(r["weights"]),
              "weights+bias": lambda: (np.asarray(r["weights"]), np.asarray(r["bias"])),
              "stacking": lambda: model_files.load(stage.file(layout.COMBINER_STACKER))}.get(kind, lambda: None)()
    return Combiner(r["submitted"], list(r["members"]), list(r["classes"]), fitted, dict(r.get("sources") or {}))
