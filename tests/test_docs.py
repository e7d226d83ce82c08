"""The reference docs say what the code does: generated parts are current, the run folder's
page names every file the layout defines, and the README stays short."""
from conftest import ROOT


def test_the_parameters_reference_is_current():
    from cellclf_utils.config.params import reference
    page = (ROOT / "docs" / "reference" / "parameters.md").read_text(encoding="utf-8")
    assert page == reference(), "regenerate: .venv/bin/cellclf params --reference > docs/reference/parameters.md"


def test_the_run_folder_page_names_every_file_of_the_layout():
    from cellclf_utils.runfolder import layout
    page = (ROOT / "docs" / "reference" / "run-folder.md").read_text(encoding="utf-8")
    names = [v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)]
    assert len(names) > 15 and [n for n in names if n not in page] == []
    assert "fold<k>" in page and "round<r>" in page and "figures/<name>.png" in page


def test_the_readme_is_short_and_names_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 150
    assert "make run" in text and "make test" in text
