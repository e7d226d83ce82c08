"""Checking parameter values: each converted to its type and held to its allowed values, then
the checks that involve several parameters or a file. A bad value raises ParameterError naming
the parameter, what it got and what is allowed."""
from __future__ import annotations

from pathlib import Path

from .. import paths
from ..data.classes import ClassMappingError, load_mapping
from ..model.backbones import NAMED_WEIGHTS, REGISTRY as BACKBONES
from .params import SPECS, ParameterError, Spec, stage_parameters


def _fail(name, value, what):
    raise ParameterError(f"parameter '{name}' must be {what} (got {value!r})")


def _as_bool(name: str, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    _fail(name, value, "true or false")


def _as_int(name: str, value):
    if isinstance(value, bool):
        _fail(name, value, "a whole number")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(value) if isinstance(value, (int, str)) else _fail(name, value, "a whole number")
    except ValueError:
        _fail(name, value, "a whole number")


def _as_float(name: str, value):
    if isinstance(value, bool):
        _fail(name, value, "a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        _fail(name, value, "a number")


def _as_str(name: str, value):
    if value is None:
        return ""
    # YAML and papermill read `-p x false` / `-p x 109` as bool / int; text parameters take them as written
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        _fail(name, value, "text")
    return value


_CONVERT = {bool: _as_bool, int: _as_int, float: _as_float, str: _as_str}


def value(name: str, raw, spec: Spec | None = None):
    """Return ``raw`` converted to parameter ``name``'s type and checked against its allowed values."""
    spec = spec or SPECS[name]
    v = _CONVERT[spec.kind](name, raw)
    if spec.choices and v not in spec.choices:
        raise ParameterError(f"parameter '{name}' must be one of {', '.join(map(str, spec.choices))} "
                             f"(got {v!r}): {spec.help}")
    if spec.check and not spec.check(v):
        raise ParameterError(f"parameter '{name}' must be {spec.allowed} (got {v!r}): {spec.help}")
    return v


def _weights_file(weights: str) -> None:
    if weights not in NAMED_WEIGHTS and not paths.resolve(weights).is_file():
        raise ParameterError(f"parameter 'weights' must be imagenet, auto, none or an existing .weights.h5 file "
                             f"(got {weights!r}; looked for {paths.resolve(weights)})")


def _together(P: dict) -> None:
    """Raise ParameterError for values that are fine alone but not together, or name a missing file."""
    if P.get("patience") and P.get("monitor") == "last":
        raise ParameterError("parameter 'patience' stops training when the monitored score stops improving, "
                             "but monitor is 'last' (no score kept): set monitor val_auc or val_loss, or patience 0")
    if P.get("freeze_bn") and P.get("train_bn_in_frozen") == "true":
        raise ParameterError("parameters 'freeze_bn' and 'train_bn_in_frozen' contradict each other: "
                             "set train_bn_in_frozen false to freeze every BatchNormalization layer")
    if "backbone" in P and "image_size" in P and P["image_size"] < BACKBONES[P["backbone"]].min_size:
        raise ParameterError(f"parameter 'image_size' must be at least {BACKBONES[P['backbone']].min_size} for "
                             f"{P['backbone']} (got {P['image_size']})")
    if "weights" in P:
        _weights_file(P["weights"])
    if P.get("classes"):
        try:
            load_mapping(P["classes"])
        except ClassMappingError as e:
            raise ParameterError(str(e)) from None
    if P.get("data_dir") and not paths.resolve(P["data_dir"]).exists():
        raise ParameterError(f"parameter 'data_dir': {P['data_dir']} does not exist (looked for "
                             f"{paths.resolve(P['data_dir'])}); give a dataset folder or CSV manifest, or '' for "
                             "the embedded synthetic set")


def validate(stage: str, namespace: dict) -> dict:
    """Return the stage's parameters taken from ``namespace`` (a notebook's globals(), or what
    `cellclf run` would pass), converted and checked. Raises ParameterError naming the first bad one."""
    out = {}
    for name in stage_parameters(stage):  # ParameterError listing the stages for an unknown one
        if name not in namespace:
            raise ParameterError(f"parameter '{name}' is missing from the notebook's parameters cell")
        out[name] = value(name, namespace[name])
    _together(out)
    return out


def resolve_files(P: dict, cwd: Path | None = None) -> dict:
    """Return ``P`` with file-valued parameters (data_dir, weights, a classes YAML, 07's members from
    other runs) that exist relative to ``cwd`` (the caller's folder) made absolute, so a kernel
    started elsewhere finds them."""
    cwd = Path(cwd or Path.cwd())
    out = dict(P)
    for name in ("data_dir", "weights", "classes"):
        v = out.get(name)
        if isinstance(v, str) and v and v not in NAMED_WEIGHTS and (cwd / v).exists():
            out[name] = str((cwd / v).resolve())
    if isinstance(out.get("members"), str):  # 07's members from other runs: paths to their stages
        out["members"] = ",".join(str((cwd / m).resolve()) if "/" in m and (cwd / m).is_dir() else m
                                  for m in (s.strip() for s in out["members"].split(",")) if m)
    return out


__all__ = ["resolve_files", "validate", "value"]
