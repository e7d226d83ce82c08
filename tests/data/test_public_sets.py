"""The public-set registry, its layout converters on tiny fake archives shaped like the real
ones, `cellclf data import`, and the class presets of each set."""
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellclf_utils.data import classes, dataset as data, fetch, public_sets
from cellclf_utils import cli

HERLEV = public_sets.SETS["herlev"].classes
SIPAKMED = public_sets.SETS["sipakmed"].classes
PBC = public_sets.SETS["pbc"].classes


def tiny_image(path: Path, seed: int) -> Path:
    """Write a 6x6 random RGB image; the format follows the suffix (.BMP, .bmp, .jpg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (6, 6, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="BMP" if path.suffix.lower() == ".bmp" else "JPEG")
    path.write_bytes(buf.getvalue())
    return path


def herlev_tree(root: Path, n: int = 2) -> Path:
    """smear2005.zip's shape: `New database pictures/<class>/<id>.BMP` plus `<id>-d.bmp` masks."""
    base = root / "smear2005" / "New database pictures"
    for k, c in enumerate(HERLEV):
        for i in range(n):
            tiny_image(base / c / f"1534{k}{i}-1534{k}{i}-001.BMP", 10 * k + i)
            tiny_image(base / c / f"1534{k}{i}-1534{k}{i}-001-d.bmp", 100 + 10 * k + i)
    (root / "smear2005" / "New database results.xls").write_bytes(b"not an image")
    return root


def sipakmed_tree(root: Path, cls: str, n: int = 2) -> Path:
    """One SIPaKMeD class archive: `im_X/im_X/CROPPED/*.bmp` (+ .dat outlines) and whole clusters."""
    inner = root / cls / cls
    for i in range(n):
        tiny_image(inner / "CROPPED" / f"{i + 1:03d}_01.bmp", i)
        (inner / "CROPPED" / f"{i + 1:03d}_01_cyt01.dat").write_text("1,2\n3,4\n")
    tiny_image(inner / "001.bmp", 99)  # a whole cluster image: not a single cell
    return root


def pbc_tree(root: Path, n: int = 2) -> Path:
    """PBC_dataset_normal_DIB.zip's shape, with the macOS resource forks it carries."""
    for k, c in enumerate(PBC):
        for i in range(n):
            tiny_image(root / "PBC_dataset_normal_DIB" / c / f"{c[:2].upper()}_{i}.jpg", 10 * k + i)
            junk = root / "__MACOSX" / "PBC_dataset_normal_DIB" / c / f"._{c[:2].upper()}_{i}.jpg"
            junk.parent.mkdir(parents=True, exist_ok=True)
            junk.write_bytes(b"\x00\x05\x16\x07 resource fork")
    return root


def zip_tree(root: Path, archive: Path, extra: dict | None = None) -> Path:
    """Zip every file under ``root`` (names relative to it), plus ``extra`` {name: bytes}."""
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(root).as_posix())
        for name, body in (extra or {}).items():
            z.writestr(zipfile.ZipInfo(name), body)
    return archive


def tar_tree(root: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as t:
        for p in sorted(root.iterdir()):
            t.add(p, p.name)
    return archive


def leftovers(folder: Path) -> list[str]:
    """Hidden work folders fetch/import left beside a target (should be none)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_herlev_archive_skips_masks_and_keeps_class_names(tmp_path):
    archive = zip_tree(herlev_tree(tmp_path / "src"), tmp_path / "smear2005.zip")
    out = tmp_path / "sets" / "herlev"
    summary = fetch.install("herlev", [archive], out)
    assert summary["counts"] == {c: 2 for c in HERLEV}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(HERLEV)
    files = [p.name for p in out.rglob("*.*") if p.parent != out]
    assert len(files) == 14 and not any(f.lower().endswith("-d.bmp") for f in files)
    assert "Jantzen" in (out / "SOURCE.md").read_text() and summary["sha256"]["smear2005.zip"]
    ds = data.load_dataset(out, "herlev3", progress=False)
    assert ds.class_names == ["normal", "low_grade", "high_grade"] and len(ds.items) == 14
    assert leftovers(out.parent) == []


def test_sipakmed_from_separate_archives_and_folders_uses_only_cropped_cells(tmp_path):
    sources = []
    for k, c in enumerate(SIPAKMED):
        tree = sipakmed_tree(tmp_path / f"src{k}", c, n=2 + k)
        if k == 0:
            sources.append(tree / c)  # extracted by hand (as from a .7z): a folder
        elif k == 1:
            sources.append(tar_tree(tree, tmp_path / f"{c}.tar.gz"))
        else:
            sources.append(zip_tree(tree, tmp_path / f"{c}.zip"))
    out = tmp_path / "sipakmed"
    out.mkdir()  # an existing empty folder is fine
    summary = fetch.install("sipakmed", sources, out)
    assert summary["counts"] == {c: 2 + k for k, c in enumerate(SIPAKMED)}
    assert all(p.suffix == ".bmp" and p.name.endswith("_01.bmp") for p in out.rglob("*.bmp"))
    assert not list(out.rglob("*.dat"))
    assert (tmp_path / "src0" / SIPAKMED[0] / SIPAKMED[0] / "CROPPED" / "001_01.bmp").exists()  # copied, not moved
    ds = data.load_dataset(out, "sipakmed3", progress=False)
    assert ds.class_names == ["normal", "abnormal", "benign"]
    assert np.bincount(ds.labels).tolist() == [2 + 3, 4 + 5, 6]
    assert data.load_dataset(out, "sipakmed5", progress=False).class_names[0] == "superficial_intermediate"


def test_pbc_nested_zip_and_macos_forks(tmp_path):
    inner = zip_tree(pbc_tree(tmp_path / "src"), tmp_path / "PBC_dataset_normal_DIB.zip")
    outer_dir = tmp_path / "outer"
    outer_dir.mkdir()
    inner.rename(outer_dir / inner.name)
    archive = zip_tree(outer_dir, tmp_path / "file_downloaded.zip")  # Mendeley-style wrapper
    out = tmp_path / "pbc"
    assert fetch.install("pbc", [archive], out)["counts"] == {c: 2 for c in PBC}
    assert not [p for p in out.rglob("._*")]
    ds = data.load_dataset(out, "pbc8", progress=False)
    assert ds.class_names == list(PBC) and len(ds.items) == 16


def test_an_archive_of_another_set_is_refused_naming_what_was_expected(tmp_path):
    archive = zip_tree(pbc_tree(tmp_path / "src"), tmp_path / "smear2005.zip")
    with pytest.raises(public_sets.LayoutError, match=r"expected class folders normal_superficiel.*"
                                                      r"missing: normal_superficiel.*Top level holds: "
                                                      r"PBC_dataset_normal_DIB, __MACOSX"):
        fetch.install("herlev", [archive], tmp_path / "herlev")
    assert not (tmp_path / "herlev").exists() and leftovers(tmp_path) == []


def test_sipakmed_missing_a_class_and_a_class_without_cropped_cells(tmp_path):
    sources = [zip_tree(sipakmed_tree(tmp_path / f"s{k}", c), tmp_path / f"{c}.zip")
               for k, c in enumerate(SIPAKMED[:4])]
    with pytest.raises(public_sets.LayoutError, match="missing: im_Metaplastic"):
        fetch.install("sipakmed", sources, tmp_path / "out")
    bare = tmp_path / "bare" / "im_Metaplastic"
    tiny_image(bare / "001.bmp", 0)  # cluster images only, no CROPPED/
    with pytest.raises(public_sets.LayoutError, match=r"im_Metaplastic: no cell images.*CROPPED"):
        fetch.install("sipakmed", sources + [bare], tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_7z_and_rar_say_how_to_extract_them(tmp_path):
    seven = tmp_path / "im_Parabasal.7z"
    seven.write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04 not really")
    with pytest.raises(fetch.FetchError, match=r"neither a zip nor a tar.*7z x im_Parabasal.7z"):
        fetch.install("sipakmed", [seven], tmp_path / "out")


def test_presets_of_the_public_sets_apply():
    names, labels = classes.apply(classes.load_mapping("sipakmed3"), list(SIPAKMED))
    assert names == ["normal", "abnormal", "benign"] and labels == [0, 0, 1, 1, 2]
    names, labels = classes.apply(classes.load_mapping("sipakmed5"), list(SIPAKMED))
    assert len(names) == 5 and labels == [0, 1, 2, 3, 4]
    names, labels = classes.apply(classes.load_mapping("pbc8"), sorted(PBC))
    assert names == list(PBC) and labels == list(range(8))
    names, _ = classes.apply(classes.load_mapping("herlev3"), list(HERLEV))
    assert names == ["normal", "low_grade", "high_grade"]
    for spec in public_sets.SETS.values():  # every advertised preset exists and covers the set
        for p in spec.presets:
            classes.apply(classes.load_mapping(p), list(spec.classes))


def test_cli_import_prints_counts_hash_citation_and_licence(tmp_path, capsys):
    archive = zip_tree(herlev_tree(tmp_path / "src", n=1), tmp_path / "smear2005.zip")
    assert cli.main(["data", "import", "herlev", str(archive), str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    assert "7 images" in out and "sha256 smear2005.zip: " in out and "--classes herlev3" in out
    assert "cite: J. Jantzen" in out and "licence: No formal open licence" in out
    assert cli.main(["data", "import", "herlev", str(archive), str(tmp_path / "h")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_cli_fetch_sipakmed_prints_the_manual_steps(tmp_path, capsys):
    assert cli.main(["data", "fetch", "sipakmed", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "https://www.cs.uoi.gr/~marina/sipakmed.html" in err
    assert f"cellclf data import sipakmed im_Dyskeratotic.zip im_Koilocytotic.zip ... {tmp_path / 's'}" in err
    assert not (tmp_path / "s").exists()
