"""`cellclf data`: generate the synthetic set, check a folder, split off a test set, fetch or
import a public set."""
from __future__ import annotations

import json
from pathlib import Path


def _cmd_synth(a) -> int:
    from ..data import synth
    out = Path(a.out)
    if a.if_missing and out.exists() and any(out.iterdir()):
        print(f"{out} exists; keeping it (--if-missing)")
        return 0
    summary = synth.generate(out, seed=a.seed, size=a.size, n_train_per_class=a.n_train_per_class,
                             n_test_per_class=a.n_test_per_class, n_classes=a.n_classes, progress=not a.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_check(a) -> int:
    from ..data import describe, load_dataset
    ds = load_dataset(a.dir, a.classes, on_bad_image="skip")  # loaded once for both checks
    rep = describe(ds)
    qrep = None
    if not a.no_quality or a.report:
        from .. import quality
        from ..report import quality_page
        qrep = quality.build(ds)
        if a.report:
            html_path = quality_page.write_html(qrep, a.report)
    if a.json:
        if qrep is not None:
            rep["quality"] = quality.summary(qrep)
        if a.report:
            rep["quality_report"] = str(html_path)
        print(json.dumps(rep, indent=2, default=str))
        return 1 if rep["skipped"] else 0
    print(f"dataset {rep['root']}: {rep['n_train']} labelled images in {len(rep['classes'])} classes, "
          f"{rep['n_test']} test images{' (with test_labels.csv)' if rep['test_labels'] else ''}")
    width = max(map(len, rep["classes"]))
    for c, n in rep["counts"].items():
        print(f"  {c:<{width}}  {n:6d}")
    print("image sizes (WxH: count): " + ", ".join(f"{k}: {v}" for k, v in list(rep["sizes"].items())[:8])
          + (" ..." if len(rep["sizes"]) > 8 else ""))
    for f in rep["ignored"]:
        print(f"ignored {f['path']}: {f['reason']}")
    for f in rep["notes"]:
        print(f"note: {f['path']}: {f['note']}")
    if rep["twelve_bit"]:
        print(f"note: {rep['twelve_bit']} image(s) are 16-bit files holding 12-bit data (no value reaches 4096): "
              "scaled from 12 bits to 8, not from 16")
    if qrep is not None:
        print("\n".join(quality.summary_lines(qrep, worst=a.worst)))
    if a.report:
        print(f"data-quality report: {html_path}")
    if rep["skipped"]:
        print(f"{len(rep['skipped'])} unreadable file(s):")
        for f in rep["skipped"]:
            print(f"  {f['path']}: {f['reason']}")
        return 1
    print("all images readable")
    return 0


def _cmd_split(a) -> int:
    from ..folds import split
    rep = split.split(a.dir, a.out, a.test_fraction, a.seed, progress=not a.quiet)
    print(f"{rep['out']}: {rep['train']} training images, {rep['test']} hidden test images "
          f"(test_labels.csv kept aside for scoring); {rep['duplicate_groups']} near-duplicate group(s), "
          f"{rep['groups_split_across']} split across train and test")
    for c, n in rep["per_class"].items():
        print(f"  {c}: {n['train']} train / {n['test']} test")
    if rep["source_test_images_left_out"]:
        print(f"  ({rep['source_test_images_left_out']} unlabeled test image(s) of the source were not copied)")
    return 0


def _print_fetched(summary: dict) -> None:
    spec, counts = summary["set"], summary["counts"]
    print(f"{summary['dest']}: {sum(counts.values())} images of {spec.title} in {len(counts)} class folders")
    width = max(map(len, counts))
    for c, n in counts.items():
        print(f"  {c:<{width}}  {n:6d}")
    for f, h in summary["sha256"].items():
        status = {"published": "matches the published checksum",
                  "lock": f"matches {summary.get('lock')}",
                  "recorded": f"no published checksum: recorded in {summary.get('lock')}; "
                              "later downloads must match it"}.get(summary.get("hash_status"), "")
        print(f"sha256 {f}: {h}" + (f" ({status})" if status else ""))
    print(f"class presets: {', '.join(f'--classes {p}' for p in spec.presets)}")
    print(f"cite: {spec.citation}\nlicence: {spec.licence}")


def _cmd_fetch(a) -> int:
    from ..data import fetch
    _print_fetched(fetch.fetch(a.name, a.dir, url=a.url, lock=a.lock, progress=not a.quiet))
    return 0


def _cmd_import(a) -> int:
    from ..data import fetch
    _print_fetched(fetch.install(a.name, a.archives, a.dir))
    return 0


def _synth_parser(dsub) -> None:
    s = dsub.add_parser("synth", help="generate the embedded synthetic stained-cell dataset")
    s.add_argument("out", help="new folder (must not exist or be empty)")
    s.add_argument("--seed", type=int, default=0, help="the same seed writes the same bytes (default 0)")
    s.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    s.add_argument("--n-train-per-class", type=int, default=400, help="labelled images per class (default 400)")
    s.add_argument("--n-test-per-class", type=int, default=40, help="unlabeled test images per class (default 40)")
    s.add_argument("--n-classes", type=int, default=3,
                   help="number of classes, 2-20 (3: the write-up's set; otherwise normal + graded severity levels)")
    s.add_argument("--if-missing", action="store_true", help="do nothing if OUT exists and is not empty")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)


def _check_parsers(dsub) -> None:
    c = dsub.add_parser("check", help="per-class counts, image sizes, every unreadable file with its reason, and a "
                                      "data-quality report (balance, size spread, colour/stain outliers, images "
                                      "unlike their class, duplicates within and across splits)")
    c.add_argument("dir", help="dataset folder or CSV manifest")
    c.add_argument("--classes", default="", help="preset (herlev3, ...) or YAML mapping; default one class per folder")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.add_argument("--report", metavar="OUT.html", default=None,
                   help="also write the data-quality report as one self-contained HTML page with thumbnails")
    c.add_argument("--worst", type=int, default=3, help="flagged files printed per finding (default 3)")
    c.add_argument("--no-quality", action="store_true", help="counts, sizes and unreadable files only")
    c.set_defaults(func=_cmd_check)
    sp = dsub.add_parser("split", help="competition-style split: train/ class folders, hidden test/ + test_labels.csv")
    sp.add_argument("dir", help="labelled dataset folder or CSV manifest")
    sp.add_argument("out", help="new folder (must not exist or be empty)")
    sp.add_argument("--test-fraction", type=float, default=0.2, help="share of images held out (default 0.2)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the stratified draw (default 0)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_split)


def _public_set_parsers(dsub) -> None:
    from ..data.fetch import DEFAULT_LOCK
    from ..data.public_sets import SETS  # stdlib only: cheap enough for the parser
    fe = dsub.add_parser("fetch", help="download a public cell-image set (checksum, lock file, safe unpacking) "
                                       "into DIR/<class>/<image>")
    fe.add_argument("name", choices=list(SETS), help="the public set")
    fe.add_argument("dir", help="new folder (must not exist or be empty)")
    fe.add_argument("--lock", default=str(DEFAULT_LOCK),
                    help=f"JSON file of trusted sha256 per set (default {DEFAULT_LOCK})")
    fe.add_argument("--url", default=None, help="a mirror of the set's archive (checked like the original)")
    fe.add_argument("--quiet", action="store_true", help="no progress bar")
    fe.set_defaults(func=_cmd_fetch)
    im = dsub.add_parser("import", help="build DIR from a public set's archive(s) downloaded by hand")
    im.add_argument("name", choices=list(SETS), help="the public set")
    im.add_argument("archives", nargs="+", metavar="ARCHIVE",
                    help="the downloaded .zip/.tar file(s), or the folder(s) they were extracted to")
    im.add_argument("dir", help="new folder (must not exist or be empty)")
    im.set_defaults(func=_cmd_import)


def add_parser(sub) -> None:
    d = sub.add_parser("data", help="datasets: generate the synthetic set, check a folder, split off a test set, "
                                    "fetch or import a public set")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    _synth_parser(dsub)
    _check_parsers(dsub)
    _public_set_parsers(dsub)
