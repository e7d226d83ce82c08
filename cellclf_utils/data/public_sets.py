"""The public cell-image sets ``cellclf data fetch`` knows: where each comes from, how to cite
it, its terms, its class presets, and how its archive becomes ``<dir>/<class>/<image>``.

The converters keep the original class names as folder names (presets regroup them) and find
the class folders by name anywhere under the extracted archive, because mirrors and hand
re-packed copies nest them differently.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable

from .images import IMAGE_SUFFIXES


class LayoutError(ValueError):
    """An archive or folder that does not look like the set it is said to be."""


def _image(rel: PurePath) -> bool:
    return rel.suffix.lower() in IMAGE_SUFFIXES


def _herlev_keep(rel: PurePath) -> bool:
    # every cell comes with its segmentation mask, `<id>-d.bmp`: a mask is not a cell image
    return _image(rel) and not rel.stem.lower().endswith("-d")


def _sipakmed_keep(rel: PurePath) -> bool:
    # a class folder also holds the whole cluster images; the single cells are in CROPPED/
    return _image(rel) and any(p.lower() == "cropped" for p in rel.parts[:-1])


@dataclass(frozen=True)
class PublicSet:
    name: str
    title: str
    url: str | None            # None: the provider wants a manual download (see ``manual``)
    archive_name: str          # the file name the download is saved under
    manual: str                # how to get the archive by hand
    classes: tuple[str, ...]   # original class folder names, kept as they are
    keep: Callable[[PurePath], bool]   # which files inside a class folder are cell images
    expected: str              # what a class folder holds, for error messages
    citation: str
    licence: str
    presets: tuple[str, ...]
    sha256: str | None = None  # a published checksum; none of the providers publishes one


SETS: dict[str, PublicSet] = {s.name: s for s in (
    PublicSet(
        name="herlev",
        title="Herlev Pap-smear benchmark (smear2005, 'New database pictures')",
        url="http://mde-lab.aegean.gr/images/stories/docs/smear2005.zip",
        archive_name="smear2005.zip",
        manual="download smear2005.zip from http://mde-lab.aegean.gr/index.php/downloads "
               "(section PAP-SMEAR (DTU/HERLEV) DATABASES & RELATED STUDIES)",
        classes=("normal_superficiel", "normal_intermediate", "normal_columnar", "light_dysplastic",
                 "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ"),
        keep=_herlev_keep,
        expected="*.BMP cell images (the *-d.bmp masks are skipped)",
        citation="J. Jantzen, J. Norup, G. Dounias, B. Bjerregaard, \"Pap-smear Benchmark Data For Pattern "
                 "Classification\", Proc. NiSIS 2005, Albufeira, Portugal, 2005.",
        licence="No formal open licence: the MDE-Lab (University of the Aegean) offers it free for research, "
                "benchmarking and education and asks that the paper be cited. Research use only, with "
                "attribution; do not redistribute it commercially.",
        presets=("herlev3", "herlev7")),
    PublicSet(
        name="pbc",
        title="PBC peripheral blood cells, normal (PBC_dataset_normal_DIB), Mendeley Data doi 10.17632/snkd93bnjr.1",
        url="https://data.mendeley.com/public-files/datasets/snkd93bnjr/files/"
            "2fc38728-2ae7-4a62-a857-032af82334c3/file_downloaded",
        archive_name="PBC_dataset_normal_DIB.zip",
        manual="download PBC_dataset_normal_DIB.zip from https://data.mendeley.com/datasets/snkd93bnjr/1",
        classes=("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil",
                 "platelet"),
        keep=_image,
        expected="*.jpg cell images",
        citation="A. Acevedo, A. Merino, S. Alferez, A. Molina, L. Boldu, J. Rodellar, \"A dataset of microscopic "
                 "peripheral blood cell images for development of automatic recognition systems\", Data in Brief "
                 "30 (2020) 105474, doi:10.1016/j.dib.2020.105474; data: Mendeley Data V1, doi:10.17632/snkd93bnjr.1",
        licence="CC BY 4.0 (Mendeley Data): use, share and adapt with attribution.",
        presets=("pbc8",)),
    PublicSet(
        name="sipakmed",
        title="SIPaKMeD Pap-smear cells (cropped single cells)",
        url=None,
        archive_name="",
        manual="1. open https://www.cs.uoi.gr/~marina/sipakmed.html\n"
               "2. download the five class archives: im_Dyskeratotic, im_Koilocytotic, im_Metaplastic, "
               "im_Parabasal, im_Superficial-Intermediate\n"
               "3. if they are .7z or .rar files, extract them first (e.g. `7z x im_Dyskeratotic.7z`): Python "
               "reads only .zip and .tar archives\n"
               "4. cellclf data import sipakmed im_Dyskeratotic.zip im_Koilocytotic.zip ... DIR  "
               "(archives or extracted folders, in any order)",
        classes=("im_Superficial-Intermediate", "im_Parabasal", "im_Koilocytotic", "im_Dyskeratotic",
                 "im_Metaplastic"),
        keep=_sipakmed_keep,
        expected="a CROPPED/ folder of *.bmp single-cell images",
        citation="M. E. Plissiti, P. Dimitrakopoulos, G. Sfikas, C. Nikou, O. Krikoni, A. Charchanti, \"SIPAKMED: "
                 "A new dataset for feature and image based classification of normal and pathological cervical "
                 "cells in Pap smear images\", IEEE ICIP 2018, Athens, pp. 3144-3148, doi:10.1109/ICIP.2018.8451588.",
        licence="No formal open licence: publicly available for experimental (research) use, with the request "
                "to cite the paper above. Research use only, with attribution.",
        presets=("sipakmed5", "sipakmed3")),
)}


def get(name: str) -> PublicSet:
    """Return the set called ``name``; ValueError lists the known ones."""
    if name not in SETS:
        raise ValueError(f"unknown public set {name!r}; known: {', '.join(SETS)}")
    return SETS[name]


def _class_folders(spec: PublicSet, roots: list[Path]) -> dict[str, Path]:
    """Return ``{class: folder}``, the outermost folder named like each class under ``roots``
    (SIPaKMeD nests ``im_X/im_X/``). Raises LayoutError when a class is missing or found
    in two unrelated places (which copy would be the set?)."""
    wanted = {c.lower(): c for c in spec.classes}
    found: dict[str, list[Path]] = {c: [] for c in spec.classes}
    for root in roots:
        if root.name.lower() in wanted:  # a class folder passed as it is
            found[wanted[root.name.lower()]].append(root)
        for here, dirs, _ in os.walk(root):
            # macOS zips carry __MACOSX/ with `._name` resource forks named like the images
            dirs[:] = sorted(d for d in dirs if d != "__MACOSX" and not d.startswith("."))
            for d in dirs:
                if d.lower() in wanted:
                    found[wanted[d.lower()]].append(Path(here) / d)
    folders, missing = {}, []
    for c, hits in found.items():
        outer = [h for h in hits if not any(o != h and o in h.parents for o in hits)]
        if not outer:
            missing.append(c)
        elif len(outer) > 1:
            raise LayoutError(f"found two folders for the {spec.name} class {c!r}: {outer[0]} and {outer[1]}; "
                              "pass one copy of the set")
        else:
            folders[c] = outer[0]
    if missing:
        seen = sorted({p.name for r in roots for p in r.iterdir()})[:10]
        raise LayoutError(
            f"this does not look like {spec.title}: expected class folders {', '.join(spec.classes)} "
            f"(each with {spec.expected}); missing: {', '.join(missing)}. Top level holds: "
            f"{', '.join(seen) or 'nothing'}")
    return folders


def build_layout(spec: PublicSet, roots: list[Path], out: Path, ours: Path | None = None) -> dict[str, int]:
    """Fill ``out/<class>/`` with the cell images of the set found under ``roots`` (extracted
    archives or folders); return the image count per class. Files under ``ours`` (our own
    temporary extraction) are moved, all others copied: a user's folder is never changed."""
    counts = {}
    for c, folder in _class_folders(spec, roots).items():
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("._")
                       and "__MACOSX" not in p.parts and spec.keep(p.relative_to(folder)))
        if not files:
            raise LayoutError(f"{folder}: no cell images; a {spec.name} class folder holds {spec.expected}")
        (out / c).mkdir(parents=True)
        names: set[str] = set()
        for p in files:
            name = p.name
            if name.lower() in names:  # same name in two sub-folders: keep both, named by their path
                name = "__".join(p.relative_to(folder).parts)
            names.add(name.lower())
            (shutil.move if ours is not None and ours in p.parents else shutil.copy2)(p, out / c / name)
        counts[c] = len(files)
    return counts


def source_note(spec: PublicSet, counts: dict[str, int], origin: str, sha256: dict[str, str]) -> str:
    """Return the SOURCE.md text written next to the class folders: what, from where, terms."""
    rows = "\n".join(f"| {c} | {n} |" for c, n in counts.items())
    hashes = "\n".join(f"- `{f}`: sha256 `{h}`" for f, h in sha256.items()) or "- (extracted folders: no hash)"
    return (f"# {spec.title}\n\nMade by `cellclf data fetch/import {spec.name}` from {origin}.\n"
            f"Original class names are kept as folder names; presets: {', '.join(spec.presets)}.\n\n"
            f"| folder | images |\n| --- | --- |\n{rows}\n\n## Archives\n{hashes}\n\n"
            f"## Citation\n{spec.citation}\n\n## Licence / terms\n{spec.licence}\n")
