"""Edge cases of RFC 9111 / RFC 9110 found by a conformance suite, seen through the real binary:
what the client gets and how many requests reach the origin.

  - Age (RFC 9111 §5.1): a list value or several Age lines: the first member counts.
  - HTTP-date (RFC 9110 §5.6.7): exactly IMF-fixdate, RFC 850 and asctime are accepted
    (letter case of names and "GMT" aside); an invalid Expires means "already stale" (§5.3).
  - Vary (RFC 9111 §4.1): Accept-Encoding / Accept-Language compare as normalised lists.
  - If-Modified-Since on a hit whose stored response has no Last-Modified compares with the
    stored Date (RFC 9110 §13.1.3).

Each case has its own cairn (memory cache "c") and origin; origin requests are counted per path.
"""
from __future__ import annotations

import calendar
import time
from email.utils import formatdate

import pytest

from helpers import get, proxy_config
from origins import Normal
from origins.server import Numbered

MISS_STORED = "cairn; fwd=uri-miss; fwd-status=200; stored"


def http_date(t):
    return formatdate(t, usegmt=True)


def start(cairn, origin, routes):
    org = origin(routes)
    cfg = proxy_config(org, route_extra={"cache": "c"})
    cfg["caches"] = {"c": {"memory": {"size": "16MiB", "max_object": "1MiB"}}}
    return cairn(cfg), org


def cstatus(r):
    return r.header("Cache-Status") or ""


def is_hit(r):
    return "hit" in cstatus(r).split("; ")


def n_origin(org, path):
    return sum(1 for q in org.requests if q.path == path)


# --------------------------------------------------------------------------------------
# Age (RFC 9111 §5.1)


def test_age_list_uses_first_member(cairn, origin):
    """Age: 7200, 0 is 7200 (the first member): with max-age=3600 the response is stale on
    arrival, so the next request goes to the origin again."""
    c, org = start(cairn, origin, {
        "/age-list": Numbered({"Cache-Control": "max-age=3600", "Age": "7200, 0"})})
    r1 = get(c.port, "/age-list")
    r2 = get(c.port, "/age-list")
    assert r1.status == r2.status == 200
    assert not is_hit(r2), f"Age: 7200, 0 with max-age=3600 was served fresh: {cstatus(r2)!r}"
    assert n_origin(org, "/age-list") == 2, \
        f"origin saw {n_origin(org, '/age-list')} requests; Age 7200 > max-age 3600 is stale"


def test_age_several_lines_use_the_first(cairn, origin):
    """Age: 0 then Age: 7200 is 0 (the first line's first member, not the largest): fresh."""
    c, org = start(cairn, origin, {
        "/age-lines": Normal(200, b"two age lines\n",
                             headers=[("Cache-Control", "max-age=3600"), ("Age", "0"),
                                      ("Age", "7200")])})
    get(c.port, "/age-lines")
    r = get(c.port, "/age-lines")
    assert r.status == 200 and r.body == b"two age lines\n"
    assert is_hit(r), f"first Age line is 0, max-age=3600: expected a hit, got {cstatus(r)!r}"
    a = int(r.header("Age"))
    assert a < 60, f"the hit says Age: {a}; the first Age line was 0"
    assert n_origin(org, "/age-lines") == 1
