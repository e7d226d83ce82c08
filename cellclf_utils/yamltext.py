"""YAML read from a file or the command line (profiles, class mappings, params.yaml, ``-p``
values), with one line saying where it stops being YAML: PyYAML's own message spans several
lines with a caret drawing, which would break the CLI's one-line errors."""
from __future__ import annotations

import yaml


class YAMLTextError(ValueError):
    """Text that is not YAML; the message names its source, line and column."""


def safe_load(text: str, source: str):
    """Return the YAML value of ``text``; YAMLTextError ``<source>: not YAML (line L, column C:
    problem)`` when it does not parse."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise YAMLTextError(f"{source}: not YAML ({where}{problem})") from None
