"""`cellclf data fetch` against a real HTTP server on 127.0.0.1 (the real urllib client path,
no mock of the network): good file, checksums and the lock file, a cut download resumed, a
server that is gone, unsafe archive members, and a target that is not empty."""
import hashlib
import io
import json
import socket
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cellclf_utils import cli
from cellclf_utils.data import fetch, public_sets
from test_public_sets import herlev_tree, leftovers, zip_tree


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` (unless ``server.ignore_range``);
    logs every request in ``server.seen``; sends only ``server.cut_after`` bytes of the next
    answer, then hangs up."""

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.seen.append({"path": self.path, "range": rng})
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        if srv.ignore_range:
            rng = None
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
        if start >= len(body):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        payload = body[start:]
        if srv.cut_after is not None:
            payload, srv.cut_after = payload[:srv.cut_after], None
        self.wfile.write(payload)  # the handler returns and HTTP/1.0 closes: a cut connection

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.seen, srv.cut_after, srv.ignore_range = {}, [], None, False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib would send 127.0.0.1 through a configured proxy
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def herlev_zip(tmp_path):
    return zip_tree(herlev_tree(tmp_path / "src"), tmp_path / "smear2005.zip").read_bytes()


def _fetch(server, tmp_path, dest="herlev", path="/smear2005.zip", **kw):
    return fetch.fetch("herlev", tmp_path / "sets" / dest, url=server.url + path,
                       lock=tmp_path / "fetch.lock.json", progress=False, **kw)


def test_good_file_builds_the_dataset_and_records_the_hash(server, tmp_path, herlev_zip):
    server.files["/smear2005.zip"] = herlev_zip
    first = _fetch(server, tmp_path)
    assert first["hash_status"] == "recorded" and first["counts"] == {c: 2 for c in public_sets.SETS["herlev"].classes}
    assert len(list((tmp_path / "sets" / "herlev").rglob("*.BMP"))) == 14
    lock = json.loads((tmp_path / "fetch.lock.json").read_text())
    assert lock["herlev"]["sha256"] == hashlib.sha256(herlev_zip).hexdigest()
    assert lock["herlev"]["bytes"] == len(herlev_zip) and lock["herlev"]["url"].startswith(server.url)
    assert leftovers(tmp_path / "sets") == []
    assert _fetch(server, tmp_path, dest="again")["hash_status"] == "lock"  # checked from then on


def test_a_file_unlike_the_lock_is_refused_and_nothing_left(server, tmp_path, herlev_zip):
    server.files["/smear2005.zip"] = herlev_zip
    (tmp_path / "fetch.lock.json").write_text(json.dumps({"herlev": {"sha256": "ab" * 32, "url": "x"}}))
    got = hashlib.sha256(herlev_zip).hexdigest()
    with pytest.raises(fetch.FetchError, match=rf"smear2005.zip from .*sha256 {got} does not match {'ab' * 32} "
                                               r"in .*fetch.lock.json.*remove the entry 'herlev'"):
        _fetch(server, tmp_path)
    assert not (tmp_path / "sets" / "herlev").exists() and leftovers(tmp_path / "sets") == []


def test_published_checksum_wins_over_the_lock(server, tmp_path, herlev_zip, monkeypatch):
    server.files["/smear2005.zip"] = herlev_zip
    spec = public_sets.SETS["herlev"]
    monkeypatch.setitem(public_sets.SETS, "herlev", replace(spec, sha256="0" * 64))
    with pytest.raises(fetch.FetchError, match="does not match 0{64} in the published checksum"):
        _fetch(server, tmp_path)
    assert leftovers(tmp_path / "sets") == [] and not (tmp_path / "fetch.lock.json").exists()
    monkeypatch.setitem(public_sets.SETS, "herlev", replace(spec, sha256=hashlib.sha256(herlev_zip).hexdigest()))
    assert _fetch(server, tmp_path)["hash_status"] == "published"
    assert not (tmp_path / "fetch.lock.json").exists()  # nothing to record


def test_a_cut_download_resumes_from_the_part_file(server, tmp_path, herlev_zip):
    server.files["/smear2005.zip"] = herlev_zip
    server.cut_after = 1000
    assert len(herlev_zip) > 2000
    with pytest.raises(fetch.FetchError, match=r"stopped after 1,000 of \d+,\d+ bytes.*run the same command again"):
        _fetch(server, tmp_path)
    part = tmp_path / "sets" / ".herlev.download" / "smear2005.zip.part"
    assert part.stat().st_size == 1000 and not (tmp_path / "sets" / "herlev").exists()
    assert _fetch(server, tmp_path)["hash_status"] == "recorded"
    assert [s["range"] for s in server.seen] == [None, "bytes=1000-"]
    lock = json.loads((tmp_path / "fetch.lock.json").read_text())
    assert lock["herlev"]["sha256"] == hashlib.sha256(herlev_zip).hexdigest()  # the joined file is whole
    assert leftovers(tmp_path / "sets") == []


def test_a_server_ignoring_range_makes_the_download_start_over(server, tmp_path, herlev_zip):
    server.files["/smear2005.zip"] = herlev_zip
    server.cut_after, server.ignore_range = 1000, True
    with pytest.raises(fetch.FetchError, match="stopped after"):
        _fetch(server, tmp_path)
    _fetch(server, tmp_path)  # a 200 to a Range request: the .part is rewritten, not appended to
    assert server.seen[-1]["range"] == "bytes=1000-"
    lock = json.loads((tmp_path / "fetch.lock.json").read_text())
    assert lock["herlev"]["sha256"] == hashlib.sha256(herlev_zip).hexdigest()


def test_a_server_that_is_gone_gives_a_clear_message(tmp_path):
    with socket.socket() as s:  # a port nobody listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/smear2005.zip"
    with pytest.raises(fetch.FetchError, match=rf"could not reach {url}: .*refused.*smear2005.zip.*by hand.*"
                                               r"cellclf data import herlev smear2005.zip"):
        fetch.fetch("herlev", tmp_path / "herlev", url=url, lock=tmp_path / "l.json", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_named(server, tmp_path):
    with pytest.raises(fetch.FetchError, match="answered HTTP 404"):
        _fetch(server, tmp_path, path="/nope.zip")


def test_an_archive_with_a_dotdot_member_is_refused_and_writes_nothing(server, tmp_path):
    tree = herlev_tree(tmp_path / "src")
    bad = zip_tree(tree, tmp_path / "bad.zip", extra={"../../../evil.txt": b"gotcha", "../evil.txt": b"x"})
    server.files["/smear2005.zip"] = bad.read_bytes()
    with pytest.raises(fetch.FetchError, match=r"member '\.\./\.\./\.\./evil.txt' is a '\.\.' path"):
        _fetch(server, tmp_path)
    assert not list(tmp_path.rglob("evil.txt")) and not (tmp_path.parent / "evil.txt").exists()
    assert leftovers(tmp_path / "sets") == [] and not (tmp_path / "fetch.lock.json").exists()


def _tar(path, members):
    with tarfile.open(path, "w") as t:
        for info, body in members:
            t.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def test_absolute_paths_and_links_are_refused_before_anything_is_written(tmp_path):
    def file_info(name, body=b"x"):
        info = tarfile.TarInfo(name)
        info.size = len(body)
        return info, body

    link = tarfile.TarInfo("im_Parabasal/CROPPED/001.bmp")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    cases = {
        "absolute path": _tar(tmp_path / "abs.tar", [file_info("ok.txt"), file_info("/tmp/cellclf-abs.txt")]),
        "symbolic link": _tar(tmp_path / "sym.tar", [file_info("ok.txt"), (link, None)]),
    }
    zabs = tmp_path / "abs.zip"
    with zipfile.ZipFile(zabs, "w") as z:
        z.writestr("ok.txt", b"x")
        z.writestr(zipfile.ZipInfo("/abs.txt"), b"x")
    cases["absolute path "] = zabs
    zlink = tmp_path / "link.zip"
    with zipfile.ZipFile(zlink, "w") as z:
        info = zipfile.ZipInfo("cell.bmp")
        info.external_attr = (0o120777 << 16)  # a unix symlink, as `zip --symlinks` stores it
        z.writestr(info, "/etc/passwd")
    cases["symbolic link "] = zlink
    for what, archive in cases.items():
        out = tmp_path / f"out-{archive.name}"
        with pytest.raises(fetch.FetchError, match=f"is (a|an) {what.strip()}"):
            fetch.safe_extract(archive, out)
        assert not out.exists(), what


def test_a_non_empty_target_is_never_touched(server, tmp_path, herlev_zip):
    server.files["/smear2005.zip"] = herlev_zip
    dest = tmp_path / "sets" / "herlev"
    dest.mkdir(parents=True)
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        _fetch(server, tmp_path)
    assert server.seen == [] and [p.name for p in dest.iterdir()] == ["mine.txt"]


def test_cli_fetch_says_it_recorded_the_hash_and_prints_the_terms(server, tmp_path, herlev_zip, capsys):
    server.files["/smear2005.zip"] = herlev_zip
    lock = tmp_path / "my.lock.json"
    args = ["data", "fetch", "herlev", str(tmp_path / "h"), "--url", server.url + "/smear2005.zip",
            "--lock", str(lock), "--quiet"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "14 images" in out and f"recorded in {lock}" in out and "cite: J. Jantzen" in out and "licence:" in out
    assert cli.main(args[:3] + [str(tmp_path / "h2")] + args[4:]) == 0
    assert f"matches {lock}" in capsys.readouterr().out
