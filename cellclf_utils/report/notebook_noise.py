"""Start-up noise taken out of executed notebooks, the way a terminal would have shown them.

The kernel's libraries print lines at import that say nothing about the stage: TensorFlow's and
XLA's C++ log (``I0000 00:00:... port.cc:153] oneDNN custom operations are on``, "Could not find
cuda drivers", ``failed call to cuInit``), absl's "before InitializeLog" banner, JAX's "no CUDA
jaxlib" fallback and the kernel's own TCP-encryption warning. ``TF_CPP_MIN_LOG_LEVEL`` does not
reach the ones written before absl starts, so they are dropped here by pattern; every other
line, a real warning or error of the stage's code among them, is kept. Progress bars (tqdm
writes each update after a carriage return) are kept as their final state.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from ..atomic import atomic_write

NOISE = tuple(re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$",
    r"^[IWE]\d{4} \d\d:\d\d:\d\d?[\d.]*\s+\d+ [\w./+-]+:\d+\] ",         # absl/glog C++ lines of TF and XLA
    r"^\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption",
    r"^(WARNING:jax\._src\.xla_bridge:)?An NVIDIA GPU may be present on this machine, but a CUDA-enabled jaxlib",
    r"^WARNING:jax\._src\.xla_bridge:Platform '\w+' is experimental",
    r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags",
))


def is_noise(line: str) -> bool:
    """Return whether ``line`` is library start-up noise (one of NOISE)."""
    return any(p.search(line) for p in NOISE)


def terminal_text(text: str) -> str:
    """Return ``text`` as a terminal leaves it: of each line rewritten after carriage returns,
    its last version (a progress bar's final state; blank for a bar that erased itself)."""
    lines = []
    for line in text.split("\n"):
        parts = line.split("\r")
        while len(parts) > 1 and not parts[-1]:
            parts.pop()  # a line ending in "\r" shows what came before it
        lines.append(parts[-1])
    return "\n".join(lines)


def drop_noise(text: str) -> str:
    """Return ``text`` without its noise lines (and with its progress bars in their final state)."""
    return "\n".join(line for line in terminal_text(text).split("\n") if not is_noise(line))


def _clean_outputs(outputs: list) -> list:
    """Return a cell's outputs with consecutive stream outputs of one stream merged, cleaned,
    and dropped when nothing but blank lines is left."""
    merged: list = []
    for out in outputs:
        if out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream" \
                and merged[-1].get("name") == out.get("name"):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(copy.deepcopy(out))
    kept = []
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = drop_noise(out["text"])
            if not out["text"].strip():
                continue
        kept.append(out)
    return kept


def clean(nb):
    """Return a copy of the notebook node ``nb`` without start-up noise in its outputs."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = _clean_outputs(cell.get("outputs", []))
    return nb


def clean_file(path: Path) -> None:
    """Rewrite the executed notebook at ``path`` without start-up noise (atomically)."""
    nb = nbformat.read(path, as_version=4)
    atomic_write(path, nbformat.writes(clean(nb)))
