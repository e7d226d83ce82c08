"""Download, verify and safely unpack a public cell-image set into ``<dir>/<class>/<image>``.

- Downloads go to ``.<dir>.download/<archive>.part`` beside the target and resume from there
  with an HTTP Range request, so a cut connection costs only the missing bytes.
- sha256 is checked against the set's published checksum or, as none of the providers
  publishes one, against the lock file (trust on first use: the first download that is complete
  and unpacks into the expected layout is recorded there and every later one must match).
- Archives are unpacked only after every member was checked to stay inside the target folder
  (no ``..``, no absolute path, no link or device), and the dataset is built in a hidden
  sibling that is renamed at the end: a failure never leaves a half dataset.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from . import public_sets

DEFAULT_LOCK = Path("data") / "fetch.lock.json"
CHUNK = 1 << 16


class FetchError(RuntimeError):
    """A download or archive problem, with what to do about it."""


def _check_target(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not empty; fetch/import never overwrites a dataset: "
                              "choose a new folder or remove it")


def sha256(path: Path) -> str:
    """Return the hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part`` if there is one); return ``dest``.

    Raises FetchError when the server cannot be reached, answers an error, or the transfer
    stops early (the ``.part`` file is kept, so running again resumes)."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "cellclf-fetch", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the .part is already the whole file
            return part.replace(dest)
        raise FetchError(f"{url} answered HTTP {e.code} {e.reason}") from None
    except (URLError, OSError) as e:
        raise FetchError(f"could not reach {url}: {getattr(e, 'reason', e)}") from None
    with resp:
        content_range = resp.headers.get("Content-Range", "")
        if have and not (resp.status == 206 and content_range.startswith(f"bytes {have}-")):
            have = 0  # the server ignored the Range request and sends the whole file: start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress) as bar:
            reason = None
            try:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
            except (OSError, HTTPException) as e:  # reset, timeout or IncompleteRead mid-body
                reason = e
    got = part.stat().st_size
    if reason is not None or (total is not None and got < total):
        raise FetchError(f"the download of {url} stopped after {got:,} of {f'{total:,}' if total else '?'} bytes "
                         f"({reason or 'connection closed'}); run the same command again to resume")
    return part.replace(dest)


def _member_problem(name: str, kind: str) -> str | None:
    """Return why an archive member is unsafe to unpack, or None."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and p.parts[0].endswith(":")):
        return "an absolute path"
    if ".." in p.parts:
        return "a '..' path that escapes the target folder"
    if kind != "file" and kind != "dir":
        return f"a {kind}, which could point outside the target folder"
    return None


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a zip or tar ``archive`` into ``dest``. Every member is checked before anything is
    written; FetchError names the first unsafe one, or says the file is no zip/tar."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            members = [(i.filename, "symbolic link" if (i.external_attr >> 16) & 0o170000 == 0o120000
                        else "dir" if i.is_dir() else "file") for i in z.infolist()]
            _refuse_unsafe(archive, members)
            z.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            infos = t.getmembers()
            _refuse_unsafe(archive, [(i.name, "file" if i.isfile() else "dir" if i.isdir() else
                                      "symbolic link" if i.issym() else "hard link" if i.islnk() else
                                      "device or fifo") for i in infos])
            if hasattr(tarfile, "data_filter"):  # tarfile's own checks as well (defence in depth)
                t.extractall(dest, filter="data")
            else:
                t.extractall(dest)
    else:
        raise FetchError(f"{archive} is neither a zip nor a tar archive (Python reads only these); if it is "
                         f".7z or .rar, extract it with an archive tool (e.g. `7z x {archive.name}`) and pass "
                         "the extracted folder")


def _refuse_unsafe(archive: Path, members: list[tuple[str, str]]) -> None:
    for name, kind in members:
        problem = _member_problem(name, kind)
        if problem:
            raise FetchError(f"{archive}: member {name!r} is {problem}; refusing to unpack this archive "
                             "(nothing was written)")


def _unpack(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, then any zip/tar inside it once (Mendeley and mirrors
    sometimes wrap the set's own zip in another one)."""
    safe_extract(archive, dest)
    inner = [p for p in sorted(dest.rglob("*")) if p.is_file() and "__MACOSX" not in p.parts
             and p.name.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))]
    for p in inner:
        safe_extract(p, p.with_name(p.name + ".d"))
        p.unlink()


def install(name: str, sources: list, dest, archive_hashes: dict[str, str] | None = None) -> dict:
    """Build the set ``name`` at ``dest`` from ``sources`` (archives or extracted folders).

    Everything happens in the hidden sibling ``.<dest>.partial`` that is renamed to ``dest`` at
    the end (and removed on any failure). Return a summary: counts per class, dest, the set."""
    spec = public_sets.get(name)
    dest = Path(dest)
    _check_target(dest)
    sources = [Path(s) for s in sources]
    for s in sources:
        if not s.exists():
            raise FileNotFoundError(f"{s} does not exist")
    hashes = archive_hashes if archive_hashes is not None else {s.name: sha256(s) for s in sources if s.is_file()}
    partial = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed earlier try
    partial.mkdir(parents=True)
    try:
        roots = []
        for i, s in enumerate(sources):
            if s.is_dir():
                roots.append(s)
            else:
                roots.append(partial / "extracted" / str(i))
                _unpack(s, roots[-1])
        built = partial / "dataset"
        counts = public_sets.build_layout(spec, roots, built, ours=partial)
        origin = ", ".join(s.name for s in sources)
        (built / "SOURCE.md").write_text(public_sets.source_note(spec, counts, origin, hashes), encoding="utf-8")
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        built.rename(dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {"set": spec, "dest": dest, "counts": counts, "sha256": hashes}


def _read_lock(lock: Path) -> dict:
    if not lock.exists():
        return {}
    try:
        return json.loads(lock.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FetchError(f"lock file {lock} is not valid JSON ({e}); fix or remove it") from None


def _write_lock(lock: Path, entries: dict) -> None:
    lock.parent.mkdir(parents=True, exist_ok=True)
    tmp = lock.with_name(lock.name + ".tmp")
    tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(lock)


def fetch(name: str, dest, url: str | None = None, lock=DEFAULT_LOCK, progress: bool = True,
          timeout: float = 60) -> dict:
    """Download the public set ``name`` (from ``url``, default its official address), verify
    it, and build ``dest``. Return install()'s summary plus ``hash_status``: "published",
    "lock" (matched the lock file) or "recorded" (first download, now in the lock file)."""
    spec = public_sets.get(name)
    dest, lock = Path(dest), Path(lock)
    url = url or spec.url
    if not url:
        raise FetchError(f"{spec.title} cannot be downloaded automatically (the provider wants a manual "
                         f"download). Steps:\n{spec.manual.replace('DIR', str(dest))}")
    _check_target(dest)
    entry = _read_lock(lock).get(name)
    work = dest.parent / f".{dest.name}.download"  # kept after a cut download: holds the .part to resume
    work.mkdir(parents=True, exist_ok=True)
    archive = work / spec.archive_name
    try:
        if not archive.exists():  # a complete earlier download, killed while unpacking, is reused
            download(url, archive, progress, timeout)
    except FetchError as e:
        if not any(work.iterdir()):
            work.rmdir()
        hint = "" if "resume" in str(e) else (
            f". Check the network (behind a proxy set HTTP_PROXY/HTTPS_PROXY), or {spec.manual} by hand "
            f"and run `cellclf data import {name} {spec.archive_name} {dest}`")
        raise FetchError(f"{e}{hint}") from None
    digest, size = sha256(archive), archive.stat().st_size
    if spec.sha256:
        expected, where = spec.sha256, "the published checksum"
    elif entry:
        expected = entry["sha256"]
        where = f"{lock} (recorded {entry.get('recorded', '?')} from {entry.get('url', '?')})"
    else:
        expected = where = None  # trust on first use: recorded below once it unpacks into the set
    if expected and digest != expected:
        shutil.rmtree(work)
        raise FetchError(
            f"{spec.archive_name} from {url}: sha256 {digest} does not match {expected} in {where}. The "
            "download is corrupt or the provider changed the file (the download was deleted). Run again to "
            f"retry; if you trust the new file, remove the entry {name!r} from {lock} so the next download "
            "is recorded instead")
    try:
        summary = install(name, [archive], dest, {spec.archive_name: digest})
    except (FetchError, public_sets.LayoutError) as e:
        shutil.rmtree(work)  # complete but unusable: resuming it would not help
        raise FetchError(f"{url}: {e}") from None
    shutil.rmtree(work)
    if not expected:
        entries = _read_lock(lock)
        entries[name] = {"url": url, "file": spec.archive_name, "sha256": digest, "bytes": size,
                         "recorded": _dt.date.today().isoformat()}
        _write_lock(lock, entries)
    summary.update(hash_status="published" if spec.sha256 else "lock" if expected else "recorded", lock=lock)
    return summary
