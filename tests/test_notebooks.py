"""Committed notebooks are clean, parameterised, thin, and name the project's kernel."""
import json

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def test_there_are_notebooks():
    assert [nb.stem[:2] for nb in NOTEBOOKS][:2] == ["01", "02"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(nb):
    doc = json.loads(nb.read_text(encoding="utf-8"))
    code = [c for c in doc["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in code), "outputs are committed; clear them"
    assert all(c.get("execution_count") is None for c in code), "execution counts are committed"
    tagged = [i for i, c in enumerate(doc["cells"]) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    assert tagged[0] == min(i for i, c in enumerate(doc["cells"]) if c["cell_type"] == "code"), \
        "the parameters cell is the first code cell"
    assert doc["metadata"]["kernelspec"]["name"] == "cellclf"
    # thin: logic lives in cellclf_utils, so no cell defines more than a small helper
    for c in code:
        src = "".join(c["source"])
        assert "tf.keras" not in src and "import tensorflow" not in src
        is_parameters = "parameters" in c.get("metadata", {}).get("tags", [])  # declarations, one per line
        assert is_parameters or len(src.splitlines()) <= 25, f"a {len(src.splitlines())}-line cell: move the logic to cellclf_utils"
    assert any(c["cell_type"] == "markdown" for c in doc["cells"])


def test_package_never_uses_tf_keras():
    for py in (ROOT / "cellclf_utils").rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        if py.name == "gradcam.py":
            # Keras 3 has no backend-neutral gradient: Grad-CAM's _gradient dispatches to each
            # backend's autodiff, the one place TensorFlow itself is imported
            body = text.split("def _gradient", 1)[1].split("\ndef ", 1)[0]
            assert text.count("import tensorflow") == body.count("import tensorflow") == 1
            assert "jax" in body and "torch" in body
            text = text.replace(body, "")
        assert "tf.keras" not in text and "import tensorflow" not in text, py.name


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_the_stage_defaults(nb):
    """papermill sees every parameter the stage validates, in the order and with the defaults of
    config.params (one source of truth: a comment with '=' or a drifted value fails here)."""
    import ast

    import papermill as pm
    from cellclf_utils.config import defaults
    from cellclf_utils.config.params import SPECS
    inspected = pm.inspect_notebook(str(nb))
    cell = {name: ast.literal_eval(spec["default"]) for name, spec in inspected.items()}
    assert list(cell) == list(defaults(nb.stem))
    assert cell == defaults(nb.stem)
    # annotated with config.params' types, so `papermill --help-notebook` shows them
    assert {n: s["inferred_type_name"] for n, s in inspected.items()} == \
        {n: SPECS[n].kind.__name__ for n in inspected}


def test_every_notebook_is_a_stage_and_every_stage_a_notebook():
    from cellclf_utils.config import STAGES
    assert [nb.stem for nb in NOTEBOOKS] == list(STAGES)


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_every_stage_of_each_profile_validates(profile):
    from cellclf_utils.config import STAGES, profiles
    settings = profiles.resolve(profile)
    for stage in STAGES:
        settings.stage(stage)  # raises ParameterError naming what is wrong
