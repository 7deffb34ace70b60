"""Found 2026-11-22: a files route with strip_prefix redirects a directory request
(`GET /static/sub`) to `Location: /sub/`, dropping the route's prefix, so the client is sent
to a URL this route does not serve. Expected: `/static/sub/`."""
from helpers import get


def test_dir_redirect_keeps_stripped_prefix(cairn, tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "index.html").write_text("sub index\n")
    c = cairn({"routes": [{"match": {"path_prefix": "/static"}, "strip_prefix": True,
                           "files": {"root": str(root)}}]})
    r = get(c.port, "/static/sub")
    assert r.status in (301, 308), r
    assert r.header("Location") == "/static/sub/", f"redirect lost the route prefix: {r}"
    r2 = get(c.port, r.header("Location"))
    assert r2.status == 200 and r2.body == b"sub index\n", r2
