import cv2
import numpy as np
import pytest

from cellclf_utils.data import cache, classes, dataset as data, images
from conftest import blob_image, write_image


def test_folder_layout_with_test_split(small_dataset):
    ds = data.load_dataset(small_dataset)
    assert ds.class_names == ["alpha", "beta"]
    assert len(ds.items) == 12 and len(ds.test_items) == 4
    assert ds.ids[0] == "alpha/alpha0.png"
    assert ds.test_ids[0] == "test/t0.png"
    assert ds.test_labels.tolist() == [1, 0, 1, 0]
    x = ds.images(24)
    assert x.shape == (12, 24, 24, 3) and x.dtype == np.uint8
    assert ds.test_images(24).shape == (4, 24, 24, 3)


def test_nested_class_folders_count_as_one_class(small_dataset):
    write_image(small_dataset / "alpha" / "deeper" / "x.png", blob_image(np.random.default_rng(1)))
    ds = data.load_dataset(small_dataset)
    assert "alpha/deeper/x.png" in ds.ids
    assert ds.class_names == ["alpha", "beta"]


def test_manifest_layout(small_dataset):
    rows = ["path,label,split"] + [f"alpha/alpha{i}.png,alpha,train" for i in range(6)] + \
           [f"beta/beta{i}.png,beta,train" for i in range(6)] + ["test/t0.png,beta,test", "test/t1.png,,test"]
    (small_dataset / "m.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(data.DatasetError, match="m.csv: no label for 1 test image"):
        data.load_dataset(small_dataset / "m.csv")  # scoring needs every test label or none
    (small_dataset / "m.csv").write_text("\n".join(rows[:-1] + ["test/t1.png,alpha,test"]) + "\n")
    ds = data.load_dataset(small_dataset / "m.csv")
    assert len(ds.items) == 12 and len(ds.test_items) == 2
    assert ds.test_labels.tolist() == [1, 0]


def test_class_mapping_preset_and_yaml(tmp_path, small_dataset):
    (tmp_path / "map.yaml").write_text("both:\n  - alpha\nother: beta\n")
    ds = data.load_dataset(small_dataset, str(tmp_path / "map.yaml"))
    assert ds.class_names == ["both", "other"]
    assert ds.labels.tolist() == [0] * 6 + [1] * 6
    assert ds.test_labels.tolist() == [1, 0, 1, 0]
    with pytest.raises(classes.ClassMappingError, match="'alpha', 'beta' are in the data but not in the mapping"):
        data.load_dataset(small_dataset, "herlev3")
    with pytest.raises(classes.ClassMappingError, match="neither a preset"):
        data.load_dataset(small_dataset, "nonsense")


def test_herlev3_preset_groups_folders():
    names, labels = classes.apply(classes.load_mapping("herlev3"),
                                  ["normal_columnar", "light_dysplastic", "carcinoma_in_situ", "normal_superficiel"])
    assert names == ["normal", "low_grade", "high_grade"]
    assert labels == [0, 1, 2, 0]


# ---- bad input: each case gives the documented behaviour and names the file ----

def _bad_dataset(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "bad"
    for cls in ("a", "b"):
        for i in range(3):
            write_image(root / cls / f"ok{i}.png", blob_image(rng))
    ok, buf = cv2.imencode(".jpg", blob_image(rng))
    (root / "a" / "corrupt.jpg").write_bytes(buf.tobytes()[:200])
    (root / "a" / "zero.png").write_bytes(b"")
    (root / "b" / "text.png").write_text("not an image")
    return root


@pytest.mark.parametrize("name, reason", [("corrupt.jpg", "truncated JPEG"), ("zero.png", "empty file"),
                                          ("text.png", "not a decodable image")])
def test_bad_files_stop_with_their_name(tmp_path, name, reason):
    root = _bad_dataset(tmp_path)
    for other in {"corrupt.jpg", "zero.png", "text.png"} - {name}:
        next(root.rglob(other)).unlink()
    with pytest.raises(images.BadImageError, match=reason) as e:
        data.load_dataset(root)
    assert name in str(e.value) and "on_bad_image='skip'" in str(e.value)


def test_skip_lists_every_bad_file(tmp_path):
    root = _bad_dataset(tmp_path)
    ds = data.load_dataset(root, on_bad_image="skip")
    assert len(ds.items) == 6
    skipped = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in ds.skipped}
    assert set(skipped) == {"corrupt.jpg", "zero.png", "text.png"}
    rep = data.check(root)
    assert len(rep["skipped"]) == 3 and rep["counts"] == {"a": 3, "b": 3}


def test_odd_but_valid_images_load(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "odd"
    write_image(root / "a" / "gray.png", cv2.cvtColor(blob_image(rng), cv2.COLOR_RGB2GRAY))
    rgba = np.dstack([blob_image(rng), np.full((40, 40), 255, np.uint8)])
    write_image(root / "a" / "rgba.png", rgba)
    write_image(root / "b" / "deep.png", blob_image(rng).astype(np.uint16) * 257)
    write_image(root / "b" / "細胞の画像.png", blob_image(rng))
    ds = data.load_dataset(root)
    assert "b/細胞の画像.png" in ds.ids
    x = ds.images(32)
    assert x.shape == (4, 32, 32, 3)
    assert x[2].max() > 200  # 16-bit scaled, not clipped to black


def test_empty_class_folder_is_an_error(small_dataset):
    (small_dataset / "gamma").mkdir()
    with pytest.raises(data.DatasetError, match="gamma has no images"):
        data.load_dataset(small_dataset)


def test_one_class_is_an_error(tmp_path):
    write_image(tmp_path / "only" / "a.png", blob_image(np.random.default_rng(0)))
    with pytest.raises(classes.ClassMappingError, match="one class only"):
        data.load_dataset(tmp_path)


def test_manifest_missing_file(small_dataset):
    (small_dataset / "m.csv").write_text("path,label\nalpha/alpha0.png,alpha\nbeta/beta0.png,beta\nbeta/gone.png,beta\n")
    with pytest.raises(images.BadImageError, match="gone.png: file not found"):
        data.load_dataset(small_dataset / "m.csv")
    ds = data.load_dataset(small_dataset / "m.csv", on_bad_image="skip")
    assert [s["reason"] for s in ds.skipped] == ["file not found"]


def test_manifest_without_columns(small_dataset):
    (small_dataset / "m.csv").write_text("file,class\nalpha/alpha0.png,alpha\n")
    with pytest.raises(data.DatasetError, match="missing column"):
        data.load_dataset(small_dataset / "m.csv")


def test_missing_source_says_what_to_do(tmp_path):
    with pytest.raises(data.DatasetError, match="cellclf data synth"):
        data.load_dataset(tmp_path / "nowhere")


def test_unknown_on_bad_image(small_dataset):
    with pytest.raises(ValueError, match="on_bad_image"):
        data.load_dataset(small_dataset, on_bad_image="ignore")


def test_every_file_not_read_is_listed_with_its_reason(small_dataset, tmp_path):
    alpha = small_dataset / "alpha"
    (alpha / "notes.txt").write_text("hello")
    write_image(alpha / ".hidden.png", blob_image(np.random.default_rng(2)))
    write_image(alpha / ".ipynb_checkpoints" / "copy.png", blob_image(np.random.default_rng(3)))
    (alpha / "gone.png").symlink_to(tmp_path / "deleted.png")
    (tmp_path / "elsewhere").mkdir()
    (alpha / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (small_dataset / ".trash").mkdir()
    ds = data.load_dataset(small_dataset)
    assert {f["path"]: f["reason"] for f in ds.ignored} == {
        str(alpha / "notes.txt"): "not an image file name (.txt)",
        str(alpha / ".hidden.png"): "hidden file (its name starts with '.')",
        str(alpha / ".ipynb_checkpoints"): "hidden folder (nothing in it is read)",
        str(alpha / "gone.png"): f"broken link (to {tmp_path / 'deleted.png'}, which does not exist)",
        str(alpha / "linked"): "link to a folder (not followed)",
        str(small_dataset / ".trash"): "hidden folder (not read as a class)"}
    assert len(ds.items) == 12  # the six class images each, nothing else


def test_data_check_lists_ignored_files_and_notes_multi_frame_files(small_dataset, capsys):
    from PIL import Image
    from cellclf_utils import cli
    (small_dataset / "alpha" / ".DS_Store").write_bytes(b"\0\0")
    pages = [Image.fromarray(np.full((30, 30, 3), v, np.uint8)) for v in (50, 150)]
    pages[0].save(small_dataset / "beta" / "stack.tif", save_all=True, append_images=pages[1:])
    assert cli.main(["data", "check", str(small_dataset), "--no-quality"]) == 0
    out = capsys.readouterr().out
    assert f"ignored {small_dataset / 'alpha' / '.DS_Store'}: hidden file" in out
    assert f"note: {small_dataset / 'beta' / 'stack.tif'}: 2 frames (a multi-page or animated file): frame 0 is used" in out


def test_cache_hits_second_time(small_dataset, monkeypatch):
    ds = data.load_dataset(small_dataset)
    first = ds.images(20)
    calls = []
    monkeypatch.setattr(images, "read_image", lambda p: calls.append(p) or (_ for _ in ()).throw(AssertionError))
    cache._hash_memo.clear()
    again = data.load_dataset(small_dataset).images(20)
    assert calls == [] and (again == first).all()


def test_cache_follows_content(small_dataset):
    ds = data.load_dataset(small_dataset)
    before = ds.images(20)[0].copy()
    write_image(ds.items[0].path, np.zeros((40, 40, 3), np.uint8))
    after = data.load_dataset(small_dataset).images(20)[0]
    assert before.mean() > 100 and after.max() == 0


def test_herlev3_on_the_real_data():
    from conftest import shared_or_skip
    herlev = shared_or_skip("data", "herlev")
    ds = data.load_dataset(herlev, "herlev3", progress=False)
    assert ds.class_names == ["normal", "low_grade", "high_grade"]
    assert np.bincount(ds.labels).tolist() == [242, 182, 493]
    assert not ds.skipped and not ds.ignored
    manifest = data.load_dataset(herlev / "manifest.csv", "herlev3", progress=False)
    assert sorted(manifest.ids) == sorted(ds.ids)


@pytest.mark.parametrize("path", ["../outside.png", "alpha/../../outside.png", "/etc/hostname", "C:\\\\data\\\\x.png"])
def test_a_manifest_path_outside_its_folder_is_refused_naming_the_line(small_dataset, path):
    (small_dataset / "m.csv").write_text(f"path,label\nalpha/alpha0.png,alpha\n{path},beta\n")
    with pytest.raises(data.DatasetError, match=r"m.csv line 3: path .* is outside the manifest's folder"):
        data.load_dataset(small_dataset / "m.csv")


def test_an_image_listed_twice_is_refused_naming_both_lines(small_dataset):
    (small_dataset / "m.csv").write_text("path,label\nalpha/alpha0.png,alpha\nbeta/beta0.png,beta\n"
                                         "./alpha/alpha0.png,beta\n")
    with pytest.raises(data.DatasetError, match=r"m.csv lines 2 and 4: alpha/alpha0.png is listed twice "
                                                r"\(labels 'alpha' and 'beta'\)"):
        data.load_dataset(small_dataset / "m.csv")


def test_a_test_label_naming_no_image_is_an_error(small_dataset):
    with open(small_dataset / "test_labels.csv", "a") as f:
        f.write("t9.png,alpha\n")
    with pytest.raises(data.DatasetError, match=r"test_labels.csv: 1 label\(s\) name no test image, e.g. 'test/t9.png'"):
        data.load_dataset(small_dataset)


def test_data_check_notes_12_bit_images(small_dataset, capsys):
    from cellclf_utils import cli
    grey = (np.arange(40 * 40).reshape(40, 40) % 4096).astype(np.uint16)
    write_image(small_dataset / "alpha" / "camera.png", grey)
    assert cli.main(["data", "check", str(small_dataset), "--no-quality"]) == 0
    assert "note: 1 image(s) are 16-bit files holding 12-bit data" in capsys.readouterr().out


def test_a_classes_yaml_that_is_not_yaml_names_the_file_and_line(small_dataset, tmp_path):
    bad = tmp_path / "groups.yaml"
    bad.write_text("normal: [alpha\nabnormal: beta\n")
    with pytest.raises(classes.ClassMappingError, match=r"parameter 'classes': .*groups.yaml: not YAML \(line 2"):
        data.load_dataset(small_dataset, str(bad))


def test_an_empty_manifest_names_itself_and_its_columns(tmp_path):
    (tmp_path / "m.csv").write_text("")
    with pytest.raises(data.DatasetError, match=r"m.csv: empty file; its first line names the columns path, label"):
        data.load_dataset(tmp_path / "m.csv")
