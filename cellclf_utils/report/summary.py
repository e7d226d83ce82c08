"""The run's result in a few terminal lines: the leaderboard's top rows and the verdict, as
``cellclf run`` prints them at its end (the index says the same, with figures)."""
from __future__ import annotations

from ..runfolder import open_run
from .index import board_rows, leaderboard, verdict


def summary_lines(run_dir, top: int = 5) -> list[str]:
    """Return the leaderboard's ``top`` rows (stage, out-of-fold accuracy with its 95% CI, the
    number of images it was scored on; stages not distinguishable from always answering the
    largest class unranked, saying so) and the verdict's sentences; [] when no stage has scores."""
    board = leaderboard(run_dir)
    if not len(board):
        return []
    stages = [{"name": st.name, "kind": m.get("kind", ""), "metrics": m}
              for st in open_run(run_dir).stages() if st.is_finished for m in [st.metrics()]]
    rows = board_rows(board, stages, None)[:top]
    width = max(len(r["stage"]) for r in rows)
    lines = [f"leaderboard (out-of-fold accuracy, 95% CI{'' if len(board) <= top else f'; top {top} of {len(board)}'}):"]
    for i, r in enumerate(rows, 1):
        place = "  -." if r["floor"] else f"{i:>3}."
        lines.append(f"{place} {r['stage']:<{width}}  {r['cv']}  n={r['n']}  {r['title']}"
                     + (f"  (not ranked: {r['floor']})" if r["floor"] else ""))
    said = verdict(stages, board)
    return lines + (["verdict:"] + [f"  {s}" for s in said] if said else [])
