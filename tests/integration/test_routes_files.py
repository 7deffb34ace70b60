"""`files:` routes: bytes, MIME types, validators, conditional GET, ranges, HEAD, traversal."""
import email.utils
import os

import pytest

from helpers import RawConn, get, raw, parse_responses

FILES = {
    "index.html": b"<!doctype html><title>index</title>\n",
    "a.txt": bytes(range(32, 127)) * 20 + b"\n",
    "style.css": b"body { color: red }\n",
    "data.json": b'{"k": [1, 2, 3]}\n',
    "app.js": b"console.log(1);\n",
    "img.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "sub/inner.txt": b"inner file\n",
    "big.bin": os.urandom(300_000),
}
SECRET = b"TOP SECRET outside the root\n"


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    base = tmp_path_factory.mktemp("files")
    root = base / "www"
    root.mkdir()
    for name, data in FILES.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (base / "secret.txt").write_bytes(SECRET)
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret2.txt").write_bytes(SECRET)
    os.symlink(base / "secret.txt", root / "link.txt")
    os.symlink("../secret.txt", root / "rel-link.txt")
    os.symlink(outside, root / "outdir")
    return root


@pytest.fixture(scope="module")
def srv(cairn_module, www):
    return cairn_module({
        "server": {"workers": 1},
        "routes": [{"name": "files", "match": {"path_prefix": "/"},
                    "files": {"root": str(www), "index": "index.html"}}],
    })


def test_get_exact_bytes(srv):
    for name in ("a.txt", "img.png", "sub/inner.txt", "big.bin"):
        r = get(srv.port, "/" + name)
        assert r.status == 200, f"/{name}: {r}"
        assert r.body == FILES[name], f"/{name}: body differs ({len(r.body)} vs {len(FILES[name])} bytes)"
        assert r.header("Content-Length") == str(len(FILES[name])), r


def test_index(srv):
    r = get(srv.port, "/")
    assert r.status == 200 and r.body == FILES["index.html"], r
    assert r.header("Content-Type", "").startswith("text/html"), r


@pytest.mark.parametrize("name,ctype", [
    ("index.html", ("text/html",)),
    ("a.txt", ("text/plain",)),
    ("style.css", ("text/css",)),
    ("data.json", ("application/json",)),
    ("app.js", ("text/javascript", "application/javascript")),
    ("img.png", ("image/png",)),
    ("big.bin", ("application/octet-stream",)),
])
def test_content_type_by_extension(srv, name, ctype):
    r = get(srv.port, "/" + name)
    assert r.status == 200, r
    got = (r.header("Content-Type") or "").split(";")[0].strip().lower()
    assert got in ctype, f"/{name}: Content-Type {got!r}, expected one of {ctype}"


def test_validators(srv, www):
    r = get(srv.port, "/a.txt")
    etag, lm = r.header("ETag"), r.header("Last-Modified")
    assert etag and etag.strip('W/').startswith('"') and etag.endswith('"'), f"bad ETag {etag!r}"
    assert lm, f"no Last-Modified: {r}"
    dt = email.utils.parsedate_to_datetime(lm)
    mtime = int(os.stat(www / "a.txt").st_mtime)
    assert int(dt.timestamp()) == mtime, f"Last-Modified {lm!r} is not the file mtime {mtime}"
    r2 = get(srv.port, "/a.txt")
    assert r2.header("ETag") == etag, "ETag must be stable across requests"


def test_if_none_match_304(srv):
    etag = get(srv.port, "/a.txt").header("ETag")
    with RawConn(srv.port) as c:
        c.send(f"GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
               "GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 304, r
        assert r.header("ETag") == etag, f"304 should repeat the ETag: {r}"
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == FILES["style.css"], \
            f"304 carried a body (pipelined response out of sync): {nxt}"


def test_if_none_match_other_etag_200(srv):
    r = get(srv.port, "/a.txt", headers={"If-None-Match": '"not-the-etag"'})
    assert r.status == 200 and r.body == FILES["a.txt"], r


def test_if_modified_since(srv):
    lm = get(srv.port, "/a.txt").header("Last-Modified")
    r = get(srv.port, "/a.txt", headers={"If-Modified-Since": lm})
    assert r.status == 304 and r.body == b"", r
    r = get(srv.port, "/a.txt", headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
    assert r.status == 200 and r.body == FILES["a.txt"], r


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=10-19", 10, 19),
    ("bytes=0-0", 0, 0),
    ("bytes=1000-", 1000, len(FILES["a.txt"]) - 1),
    ("bytes=-5", len(FILES["a.txt"]) - 5, len(FILES["a.txt"]) - 1),
    ("bytes=1800-99999", 1800, len(FILES["a.txt"]) - 1),
])
def test_single_range(srv, rng, start, end):
    data = FILES["a.txt"]
    r = get(srv.port, "/a.txt", headers={"Range": rng})
    assert r.status == 206, f"Range {rng}: {r}"
    assert r.header("Content-Range") == f"bytes {start}-{end}/{len(data)}", r
    assert r.body == data[start:end + 1], f"Range {rng}: wrong bytes {r.body[:40]!r}"
    assert r.header("Content-Length") == str(end - start + 1), r


def test_unsatisfiable_range_416(srv):
    n = len(FILES["a.txt"])
    r = get(srv.port, "/a.txt", headers={"Range": f"bytes={n + 10}-{n + 20}"})
    assert r.status == 416, r
    assert r.header("Content-Range") == f"bytes */{n}", r


def test_head_has_length_no_body(srv):
    with RawConn(srv.port) as c:
        c.send(b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        h = c.read_response(head_request=True)
        assert h.status == 200, h
        assert h.header("Content-Length") == str(len(FILES["big.bin"])), h
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == FILES["style.css"], \
            f"HEAD response carried a body: {nxt}"


def test_missing_file_404(srv):
    r = get(srv.port, "/nope.txt")
    assert r.status == 404, r


ABOVE_ROOT = {"/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt",
              "/sub/%2e%2e/%2e%2e/secret.txt"}


@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..%2fsecret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/sub/../../secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "/..%5csecret.txt",
    "/link.txt",
    "/rel-link.txt",
    "/outdir/secret2.txt",
])
def test_traversal_404(srv, target):
    data = raw(srv.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
               timeout=3)
    assert SECRET not in data, f"{target} leaked a file outside the root!"
    rs = parse_responses(data)
    assert rs, f"no response for {target}: {data!r}"
    # A ".." that climbs above "/" is refused by path normalisation before routing (400,
    # docs/http1.md); the others reach the files action, which answers 404.
    want = 400 if target in ABOVE_ROOT else 404
    assert rs[0].status == want, f"{target}: expected {want}, got {rs[0]}"


def _etag(srv):
    return get(srv.port, "/a.txt").header("ETag")


@pytest.mark.parametrize("inm", ["*", '"nope", {etag}', "W/{etag}"])
def test_if_none_match_forms_304(srv, inm):
    etag = _etag(srv)
    weak = etag if etag.startswith("W/") else "W/" + etag
    value = inm.format(etag=etag).replace("W/" + etag, weak)
    r = get(srv.port, "/a.txt", headers={"If-None-Match": value})
    assert r.status == 304, f"If-None-Match: {value} must give 304: {r}"


def test_if_none_match_beats_if_modified_since(srv):
    lm = get(srv.port, "/a.txt").header("Last-Modified")
    r = get(srv.port, "/a.txt", headers={"If-None-Match": '"other"', "If-Modified-Since": lm})
    assert r.status == 200 and r.body == FILES["a.txt"], \
        f"If-Modified-Since must be ignored when If-None-Match is present: {r}"


def test_if_match_failure_412(srv):
    r = get(srv.port, "/a.txt", headers={"If-Match": '"not-it"'})
    assert r.status == 412, r
    r = get(srv.port, "/a.txt", headers={"If-Match": _etag(srv)})
    assert r.status == 200, r


def test_if_unmodified_since_past_412(srv):
    r = get(srv.port, "/a.txt", headers={"If-Unmodified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
    assert r.status == 412, r


def test_if_range(srv):
    data = FILES["a.txt"]
    etag = _etag(srv)
    r = get(srv.port, "/a.txt", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 206 and r.body == data[:10], r
    r = get(srv.port, "/a.txt", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status == 200 and r.body == data, f"If-Range mismatch must send the whole file: {r}"


def test_malformed_range_ignored(srv):
    r = get(srv.port, "/a.txt", headers={"Range": "bytes=abc"})
    assert r.status == 200 and r.body == FILES["a.txt"], r


def test_range_on_big_file(srv):
    data = FILES["big.bin"]
    r = get(srv.port, "/big.bin", headers={"Range": "bytes=100000-250000"})
    assert r.status == 206 and r.body == data[100000:250001], f"{r.status} {len(r.body)}"


def test_directory_redirect_and_index(cairn, tmp_path):
    root = tmp_path / "www"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "start.htm").write_bytes(b"docs start\n")
    (root / "empty").mkdir()
    c = cairn({"routes": [{"match": {"path_prefix": "/"},
                           "files": {"root": str(root), "index": "start.htm"}}]})
    r = get(c.port, "/docs?x=1")
    assert r.status in (301, 308) and r.header("Location") == "/docs/?x=1", \
        f"a directory without its slash should redirect to it, keeping the query: {r}"
    r = get(c.port, "/docs/")
    assert r.status == 200 and r.body == b"docs start\n", f"custom index not served: {r}"
    r = get(c.port, "/empty/")
    assert r.status in (403, 404), f"a directory without index must not be listed: {r}"
    assert b"start.htm" not in r.body
