"""Configuration: every parameter defined once (type, allowed values from the registries,
default, the stages that take it), their validation, and the profiles a series runs with.

Entry points: ``validate(stage, namespace)``, ``defaults(stage)``, ``describe(stage)``,
``stage_name``, ``ParameterError``, ``profiles.resolve(profile, ...) -> Settings``.
"""
from . import profiles
from .params import SPECS, STAGES, ParameterError, defaults, describe, stage_name, stage_parameters
from .validate import resolve_files, validate

__all__ = ["profiles", "SPECS", "STAGES", "ParameterError", "defaults", "describe", "stage_name",
           "stage_parameters", "resolve_files", "validate"]
