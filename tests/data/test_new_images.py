"""Images to classify: from folders (sub-folders too; other files listed as ignored), files and
manifests; an id given twice, a missing source or an unreadable image stops naming it, and with
skip the unreadable image is listed and the others kept."""
import numpy as np
import pytest

from cellclf_utils.data import BadImageError, DatasetError
from cellclf_utils.data.new_images import gather
from conftest import blob_image, write_image


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "new"
    write_image(d / "a.png", blob_image(rng))
    write_image(d / "sub" / "b.jpg", blob_image(rng), ".jpg")
    (d / "notes.txt").write_text("not an image")
    (d / ".hidden.png").write_bytes(b"")
    return d


def test_a_folder_gives_every_image_under_it_with_ids_relative_to_it(folder):
    found = gather([str(folder)])
    assert found.ids == ["a.png", "sub/b.jpg"] and found.paths == [folder / "a.png", folder / "sub" / "b.jpg"]
    assert {f["path"]: f["reason"] for f in found.ignored} == {
        str(folder / ".hidden.png"): "hidden file (its name starts with '.')",
        str(folder / "notes.txt"): "not an image file name (.txt)"} and not found.skipped


def test_files_and_manifests_keep_the_ids_they_are_given(folder, tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path\nnew/sub/b.jpg\n")
    found = gather([str(folder / "a.png"), str(manifest)])
    assert found.ids == [str(folder / "a.png"), "new/sub/b.jpg"]
    assert found.paths[1] == tmp_path / "new" / "sub" / "b.jpg"


def test_an_image_named_twice_or_a_missing_source_stops(folder, tmp_path):
    with pytest.raises(DatasetError, match="'a.png' is given twice"):
        gather([str(folder), str(folder)])
    with pytest.raises(DatasetError, match="nothere: no such file or folder"):
        gather([str(tmp_path / "nothere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images in"):
        gather([str(tmp_path / "empty")])


def test_an_unreadable_image_stops_naming_it_or_is_skipped_and_listed(folder):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(BadImageError, match=r"broken.png: .*--on-bad-image skip"):
        gather([str(folder)])
    found = gather([str(folder)], on_bad_image="skip")
    assert found.ids == ["a.png", "sub/b.jpg"] and [s["path"] for s in found.skipped] == [str(folder / "broken.png")]
