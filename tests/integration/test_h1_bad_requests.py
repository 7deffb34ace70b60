"""The bad-request corpus tests/data/h1_bad_requests.txt, one test per entry.

Format (see the file's header): lines before the first entry form the header; it states
the limits to configure (`max_head = 8192 bytes, max_headers = 100, max_target = 2048
bytes`), which become server.max_header_size / max_headers / max_uri_size. Each entry is
`### <status> <name>` followed by lines holding the raw request written with C escapes
(\\r \\n \\t \\0 \\xHH \\\\); the file's own newlines are ignored; other lines starting
with "#" are comments.

For each entry the raw bytes are sent on a fresh connection; cairn must answer with
exactly <status> and then close the connection (recv returns b'' within 2 s).
"""
import re
from pathlib import Path

import pytest

from helpers import RawConn, c_unescape, static_route

CORPUS = Path(__file__).resolve().parent.parent / "data" / "h1_bad_requests.txt"
# corpus header name -> cairn server key
LIMIT_KEYS = {"max_head": "max_header_size", "max_header_size": "max_header_size",
              "max_headers": "max_headers", "max_target": "max_uri_size",
              "max_uri_size": "max_uri_size", "max_body_size": "max_body_size",
              "max_body": "max_body_size"}


def load_corpus():
    """(limits dict, [(status, name, raw bytes)]) or raises FileNotFoundError/ValueError."""
    text = CORPUS.read_text(encoding="utf-8")
    lines = text.split("\n")
    header, entries, cur = [], [], None
    for lineno, ln in enumerate(lines, 1):
        ln = ln.rstrip("\r")
        m = re.match(r"^###\s+(\d{3})\s+(.+?)\s*$", ln)
        if m:
            cur = [int(m.group(1)), m.group(2), [], lineno]
            entries.append(cur)
        elif ln.startswith("###"):
            raise ValueError(f"{CORPUS}:{lineno}: malformed entry header {ln!r}")
        elif ln.startswith("#"):
            if cur is None:
                header.append(ln)
        elif cur is None:
            header.append(ln)
        else:
            cur[2].append(ln)
    limits = {}
    for ln in header:
        for m in re.finditer(r"\b([a-z_]+)\s*[:=]\s*([0-9]+)\s*([A-Za-z]*)", ln):
            key, num, unit = m.group(1), int(m.group(2)), m.group(3)
            if key not in LIMIT_KEYS:
                continue
            if key == "max_headers" or unit in ("", "bytes", "B"):
                val = num if key == "max_headers" else (
                    f"{num // 1024}KiB" if num % 1024 == 0 else num)
            else:
                val = f"{num}{unit}"
            limits[LIMIT_KEYS[key]] = val
    out = []
    for status, name, body_lines, lineno in entries:
        data = c_unescape("".join(body_lines))
        if not data:
            raise ValueError(f"{CORPUS}:{lineno}: entry {name!r} has no request bytes")
        out.append((status, name, data))
    return limits, out


def _params():
    try:
        _, entries = load_corpus()
    except FileNotFoundError:
        return [pytest.param(None, None, None, id="corpus-missing")]
    except ValueError as e:
        return [pytest.param(None, str(e), None, id="corpus-malformed")]
    ids, params = {}, []
    for status, name, data in entries:
        ident = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
        n = ids.get(ident, 0)
        ids[ident] = n + 1
        params.append(pytest.param(status, name, data, id=f"{status}-{ident}" + (f"-{n}" if n else "")))
    if not params:
        return [pytest.param(None, "the corpus has no entries", None, id="corpus-empty")]
    return params


@pytest.fixture(scope="module")
def srv(cairn_module):
    try:
        limits, _ = load_corpus()
    except (FileNotFoundError, ValueError):
        limits = {}
    server = {"workers": 1, "header_timeout": "2s", "body_timeout": "2s"}
    server.update(limits)
    return cairn_module({"server": server, "routes": [static_route("ok\n", path_prefix="/")]})


@pytest.mark.parametrize("status,name,data", _params())
def test_bad_request(srv, status, name, data):
    if data is None:
        pytest.fail(f"bad-request corpus unusable: {name or f'{CORPUS} does not exist'}",
                    pytrace=False)
    with RawConn(srv.port, timeout=5) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # cairn may answer and close before reading everything
        r = c.read_response(timeout=4)
        assert r.status == status, f"{name}: expected {status}, got {r.status} ({r}) for {data!r}"
        assert r.body and r.header("Content-Type"), f"{name}: error without body/Content-Type: {r}"
        c.wait_closed(2)


@pytest.fixture(scope="module")
def proxied(cairn_module):
    from origins import Origin
    org = Origin().start()
    try:
        limits, _ = load_corpus()
    except (FileNotFoundError, ValueError):
        limits = {}
    server = {"workers": 1, "header_timeout": "2s", "body_timeout": "2s"}
    server.update(limits)
    c = cairn_module({"server": server,
                      "upstreams": {"o": {"peers": [{"address": org.address}],
                                          "connect_timeout": "1s", "read_timeout": "2s"}},
                      "routes": [{"match": {"path_prefix": "/"}, "upstream": "o"}]})
    yield c, org
    org.stop()


@pytest.mark.parametrize("status,name,data", _params())
def test_bad_request_not_forwarded(proxied, status, name, data):
    """Same corpus on a proxied route: same status, and no complete request reaches the
    origin (no request smuggling)."""
    if data is None:
        pytest.fail(f"bad-request corpus unusable: {name or f'{CORPUS} does not exist'}",
                    pytrace=False)
    c, org = proxied
    before = len(org.requests)
    with RawConn(c.port, timeout=5) as s:
        try:
            s.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = s.read_response(timeout=4)
        assert r.status == status, f"{name}: expected {status}, got {r.status} ({r}) for {data!r}"
        s.wait_closed(2)
    seen = org.requests[before:]
    assert not seen, f"{name}: the origin received {[(q.method, q.target, q.headers) for q in seen]}"
