"""Profiles: named sets of parameters for the whole series (``notebooks/profiles/*.yaml``: smoke,
quick, full) or a YAML file, with per-stage sections, and the command line's values on top.

Precedence, lowest first: a stage's defaults, the profile, the profile's ``stages.<stage>``
section, the command line. ``Settings.stage(name)`` gives what a stage runs with, validated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import paths, yamltext
from .params import STAGES, ParameterError, defaults, stage_parameters
from .validate import resolve_files, validate


def profiles_dir() -> Path:
    """Return the folder of the named profiles (beside the series' notebooks)."""
    return paths.project_root() / "notebooks" / "profiles"


def known_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def load_profile(profile: str) -> dict:
    """Return the parameters of a profile: a name in notebooks/profiles/ or a YAML path."""
    path = profiles_dir() / f"{profile}.yaml"
    if not path.exists():
        path = paths.resolve(profile)
    if not path.is_file():
        raise ParameterError(f"--profile {profile!r}: no such profile (known: {', '.join(known_profiles())}) "
                             "or YAML file")
    try:
        values = yamltext.safe_load(path.read_text(encoding="utf-8"), str(path)) or {}
    except yamltext.YAMLTextError as e:
        raise ParameterError(str(e)) from None
    if not isinstance(values, dict):
        raise ParameterError(f"{path}: a profile is a flat mapping 'parameter: value'")
    values.setdefault("profile", path.stem)
    return values


@dataclass
class Settings:
    """A profile's values with the command line's on top, as the series runs them."""
    name: str                  # the --profile given
    values: dict               # the profile's values, the command line's on top
    per_stage: dict            # the profile's stages.<stage> sections
    cli: dict                  # the command line's own values (they win over a section)

    def passed(self, stage: str) -> dict:
        """Return the parameters `cellclf run` passes to ``stage``'s notebook: those it declares."""
        declared = set(stage_parameters(stage))
        merged = {**self.values, **self.per_stage.get(stage, {}), **self.cli}
        return {k: v for k, v in merged.items() if k in declared}

    def stage(self, stage: str) -> dict:
        """Return ``stage``'s full parameters (defaults, then what is passed), validated."""
        return validate(stage, {**defaults(stage), **self.passed(stage)})

    def record(self) -> dict:
        """Return what a run records in params.yaml: the values, the per-stage sections and the
        command line's own values (so --resume compares them, and rebuilds these Settings)."""
        out = {**self.values, "stages": self.per_stage} if self.per_stage else dict(self.values)
        return {**out, COMMAND_LINE: dict(self.cli)}


COMMAND_LINE = "command_line"  # params.yaml's key for the command line's own values


def from_record(record: dict) -> Settings:
    """Return the Settings a run recorded in its params.yaml (``Settings.record``)."""
    values = {k: v for k, v in record.items() if k not in ("stages", COMMAND_LINE)}
    return Settings(values.get("profile", ""), values, dict(record.get("stages") or {}),
                    dict(record.get(COMMAND_LINE) or {}))


def resolve(profile: str, data: str | None = None, classes: str | None = None, overrides: dict | None = None,
            cwd: Path | None = None) -> Settings:
    """Return the Settings of ``profile`` with the command line's ``data``, ``classes`` and ``-p``
    values on top (file paths relative to ``cwd`` made absolute); ParameterError for a name no
    stage takes or a section naming an unknown stage or a parameter that stage lacks."""
    values = load_profile(profile)
    per_stage = values.pop("stages", None) or {}
    cli = dict(overrides or {})
    if data is not None:
        cli["data_dir"] = data
    if classes is not None:
        cli["classes"] = classes
    cli = resolve_files(cli, cwd)
    values.update(cli)
    settings = Settings(profile, values, per_stage, cli)
    _check_names(settings)
    return settings


def _check_names(s: Settings) -> None:
    known = set().union(*(names for names, _ in STAGES.values()))
    unknown = sorted(set(s.values) - known)
    if unknown:
        raise ParameterError(f"parameter(s) {', '.join(unknown)} are not parameters of any notebook in the series; "
                             "`cellclf params <stage>` lists them")
    for stage, section in s.per_stage.items():
        if stage not in STAGES:
            raise ParameterError(f"profile {s.name!r}: section stages.{stage} names no notebook of the series")
        wrong = sorted(set(section) - set(stage_parameters(stage)))
        if wrong:
            raise ParameterError(f"profile {s.name!r}: {', '.join(wrong)} are not parameters of {stage}")
