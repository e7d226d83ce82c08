"""Class mappings: original labels (folder names) -> task labels.

A mapping is a dict ``{task_label: [original_label, ...]}`` in the order the task
classes should appear. It comes from a named preset, a YAML file of the same shape,
or is the identity (``""``: every folder is its own class, sorted by name).
"""
from __future__ import annotations

from pathlib import Path

from .. import yamltext

PRESETS: dict[str, dict[str, list[str]]] = {
    # Bethesda/CIN practice: mild dysplasia = LSIL; moderate, severe and CIS = HSIL.
    "herlev3": {
        "normal": ["normal_superficiel", "normal_intermediate", "normal_columnar"],
        "low_grade": ["light_dysplastic"],
        "high_grade": ["moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ"],
    },
    "herlev7": {name: [name] for name in (
        "normal_superficiel", "normal_intermediate", "normal_columnar", "light_dysplastic",
        "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ")},
    # SIPaKMeD (`cellclf data fetch sipakmed`): the 5 cell types, normal first, named without `im_`
    "sipakmed5": {
        "superficial_intermediate": ["im_Superficial-Intermediate"],
        "parabasal": ["im_Parabasal"],
        "koilocytotic": ["im_Koilocytotic"],
        "dyskeratotic": ["im_Dyskeratotic"],
        "metaplastic": ["im_Metaplastic"],
    },
    # the SIPaKMeD paper's (Plissiti et al., ICIP 2018) 3-way grouping
    "sipakmed3": {
        "normal": ["im_Superficial-Intermediate", "im_Parabasal"],
        "abnormal": ["im_Koilocytotic", "im_Dyskeratotic"],
        "benign": ["im_Metaplastic"],
    },
    # PBC normal peripheral blood cells (`cellclf data fetch pbc`), its 8 folders
    "pbc8": {name: [name] for name in (
        "basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet")},
    # the embedded synthetic set in its natural order (identity would sort it)
    "synth3": {name: [name] for name in ("normal", "degenerated", "degenerated_severe")},
}


class ClassMappingError(ValueError):
    """A class mapping that cannot be applied to a dataset."""


def load_mapping(classes: str | dict | None) -> dict[str, list[str]] | None:
    """Return the mapping for ``classes`` (preset name, YAML path or dict), or None for identity."""
    if classes is None or classes == "" or classes == "identity":
        return None
    if isinstance(classes, dict):
        raw, source = classes, "the given mapping"
    elif classes in PRESETS:
        return {k: list(v) for k, v in PRESETS[classes].items()}
    else:
        path = Path(classes)
        if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
            raise ClassMappingError(
                f"parameter 'classes': {classes!r} is neither a preset ({', '.join(PRESETS)}), "
                "nor an existing .yaml file, nor '' (one class per folder)")
        try:
            raw, source = yamltext.safe_load(path.read_text(encoding="utf-8"), str(path)), str(path)
        except yamltext.YAMLTextError as e:
            raise ClassMappingError(f"parameter 'classes': {e}") from None
    if not isinstance(raw, dict) or not raw:
        raise ClassMappingError(f"{source}: expected a mapping 'task_label: [original_label, ...]'")
    mapping = {str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in raw.items()}
    seen: dict[str, str] = {}
    for task, originals in mapping.items():
        for o in originals:
            if o in seen:
                raise ClassMappingError(f"{source}: label {o!r} is mapped to both {seen[o]!r} and {task!r}")
            seen[o] = task
    return mapping


def apply(mapping: dict[str, list[str]] | None, originals: list[str], name: str = "classes"):
    """Return ``(class_names, label_index_per_item)`` for the original labels given.

    Raises ClassMappingError naming labels the mapping does not cover, and task classes
    that end up with no images, since both silently change the task.
    """
    present = sorted(set(originals))
    if mapping is None:
        mapping = {o: [o] for o in present}
    inverse = {o: i for i, originals_ in enumerate(mapping.values()) for o in originals_}
    unknown = [o for o in present if o not in inverse]
    if unknown:
        raise ClassMappingError(
            f"parameter '{name}': labels {', '.join(map(repr, unknown))} are in the data but not in the "
            f"mapping (it covers {', '.join(inverse)}); add them to a YAML mapping or use classes=''")
    class_names = list(mapping)
    labels = [inverse[o] for o in originals]
    empty = [c for i, c in enumerate(class_names) if i not in set(labels)]
    if empty:
        raise ClassMappingError(
            f"parameter '{name}': task classes {', '.join(map(repr, empty))} have no images "
            "(their folders are missing or empty); drop them from the mapping or add images")
    if len(class_names) < 2:
        raise ClassMappingError(
            f"the dataset has one class only ({class_names[0]!r}); classification needs at least 2 "
            "(is the folder layout <dir>/<class>/<image>?)")
    return class_names, labels


def inverse(mapping: dict[str, list[str]] | None, class_names: list[str]) -> dict[str, int]:
    """Return ``{original_label: class index}`` for a mapping (identity when None)."""
    if mapping is None:
        return {c: i for i, c in enumerate(class_names)}
    return {o: class_names.index(task) for task, originals in mapping.items() for o in originals}
