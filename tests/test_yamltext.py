"""YAML that does not parse is one line naming its source, line and column."""
import pytest

from cellclf_utils.yamltext import YAMLTextError, safe_load


def test_yaml_parses_as_yaml():
    assert safe_load("lr: 0.001\nsizes: [1, 2]\n", "x") == {"lr": 0.001, "sizes": [1, 2]}


@pytest.mark.parametrize("text, where", [("a: [1\n", "line 2, column 1"), ("a: b: c\n", "line 1, column 5"),
                                          ("\tx: 1\n", "line 1, column 1")])
def test_text_that_is_not_yaml_is_one_line_naming_where(text, where):
    with pytest.raises(YAMLTextError) as e:
        safe_load(text, "profile.yaml")
    msg = str(e.value)
    assert msg.startswith(f"profile.yaml: not YAML ({where}: ") and "\n" not in msg
