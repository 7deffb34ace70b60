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


# --------------------------------------------------------------------------------------
# HTTP-date (RFC 9110 §5.6.7) and Expires (RFC 9111 §5.3)

FUTURE = time.time() + 30 * 86400
# 6 March of next year, 08:49:37: one-digit day and hour, so every malformation can be built.
NEXT_YEAR = time.gmtime().tm_year + 1
FIXED = calendar.timegm((NEXT_YEAR, 3, 6, 8, 49, 37))


def imf(t):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))


def rfc850(t):
    return time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(t))


def asctime(t):
    g = time.gmtime(t)
    return time.strftime("%a %b ", g) + f"{g.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", g)


VALID_EXPIRES = [
    ("imf-fixdate", imf(FUTURE)),
    ("rfc850", rfc850(FUTURE)),
    ("asctime", asctime(FUTURE)),
    ("upper-case-names-mixed-gmt", imf(FUTURE).upper().replace("GMT", "gMT")),
    ("lower-case-rfc850", rfc850(FUTURE).lower()),
]

_fixed_imf = imf(FIXED)                       # "Sat, 06 Mar 2027 08:49:37 GMT"
_wd = _fixed_imf[:3]
INVALID_EXPIRES = [
    ("two-spaces", _fixed_imf[:16] + "  " + _fixed_imf[17:]),
    ("one-digit-hour", _fixed_imf.replace(" 08:", " 8:")),
    ("one-digit-day", _fixed_imf.replace(" 06 ", " 6 ")),
    ("missing-gmt", _fixed_imf[:-4]),
    ("trailing-garbage", _fixed_imf + "x"),
    ("february-30", f"{_wd}, 30 Feb {NEXT_YEAR} 08:49:37 GMT"),
    ("rfc850-two-spaces", rfc850(FIXED).replace(", ", ",  ")),
    ("asctime-one-space-before-day", asctime(FIXED).replace("  6", " 6")),
]


@pytest.mark.parametrize("name,value", VALID_EXPIRES, ids=[v[0] for v in VALID_EXPIRES])
def test_valid_expires_is_fresh(cairn, origin, name, value):
    """An Expires 30 days ahead in any of the three formats: stored and served fresh."""
    c, org = start(cairn, origin, {"/exp": Numbered({"Date": http_date(time.time()),
                                                     "Expires": value})})
    r1 = get(c.port, "/exp")
    assert cstatus(r1) == MISS_STORED, f"Expires: {value!r}: {cstatus(r1)!r}"
    r2 = get(c.port, "/exp")
    assert r2.status == 200 and is_hit(r2), \
        f"Expires: {value!r} (30 days ahead) should be fresh; Cache-Status {cstatus(r2)!r}"
    assert n_origin(org, "/exp") == 1


@pytest.mark.parametrize("name,value", INVALID_EXPIRES, ids=[v[0] for v in INVALID_EXPIRES])
def test_invalid_expires_is_stale(cairn, origin, name, value):
    """A malformed Expires, even one that would be months ahead, means already expired: not
    served from the cache without the origin."""
    c, org = start(cairn, origin, {"/exp": Numbered({"Date": http_date(time.time()),
                                                     "Expires": value})})
    r1 = get(c.port, "/exp")
    r2 = get(c.port, "/exp")
    assert r1.status == r2.status == 200
    assert not is_hit(r2), f"invalid Expires: {value!r} was served fresh: {cstatus(r2)!r}"
    assert n_origin(org, "/exp") == 2, \
        f"Expires: {value!r}: origin saw {n_origin(org, '/exp')} requests, expected 2"


# --------------------------------------------------------------------------------------
# Vary (RFC 9111 §4.1)

VARY_SAME = [
    ("accept-encoding", "Accept-Encoding",
     [[("Accept-Encoding", "gzip, br")], [("Accept-Encoding", "br,GZIP")],
      [("Accept-Encoding", "BR , GZIP")], [("Accept-Encoding", "br"), ("accept-encoding", "gzip")]]),
    ("accept-language", "Accept-Language",
     [[("Accept-Language", "en-US, fr;q=0.5")], [("Accept-Language", "FR;Q=0.5,en-us")],
      [("Accept-Language", "fr ; q=0.5"), ("Accept-Language", "en-US")]]),
]


@pytest.mark.parametrize("name,field,variants", VARY_SAME, ids=[v[0] for v in VARY_SAME])
def test_vary_list_normalised(cairn, origin, name, field, variants):
    """Requests whose list differs only in order, case, whitespace and line splitting select
    the same stored response: one origin request."""
    c, org = start(cairn, origin, {"/v": Numbered({"Cache-Control": "max-age=60",
                                                   "Vary": field})})
    first = get(c.port, "/v", headers=variants[0])
    assert first.status == 200 and first.body == b"/v #1\n"
    for hs in variants[1:]:
        r = get(c.port, "/v", headers=hs)
        assert r.body == b"/v #1\n" and is_hit(r), \
            f"{hs} should select the variant stored for {variants[0]}; got {r.body!r} " \
            f"Cache-Status {cstatus(r)!r}"
    assert n_origin(org, "/v") == 1


def test_vary_lists_still_differ(cairn, origin):
    """Different members (or a different q-value) are still different variants."""
    c, org = start(cairn, origin, {"/v": Numbered({"Cache-Control": "max-age=60",
                                                   "Vary": "Accept-Encoding"})})
    bodies = [get(c.port, "/v", headers={"Accept-Encoding": v}).body
              for v in ("gzip", "br", "gzip;q=0.5", "gzip, br")]
    assert bodies == [b"/v #1\n", b"/v #2\n", b"/v #3\n", b"/v #4\n"], bodies
    assert n_origin(org, "/v") == 4


def test_vary_other_fields_keep_order(cairn, origin):
    """Fields other than Accept-Encoding / Accept-Language keep today's comparison: the order
    of members matters, whitespace around commas does not."""
    c, org = start(cairn, origin, {"/v": Numbered({"Cache-Control": "max-age=60",
                                                   "Vary": "X-Tenant"})})
    a = get(c.port, "/v", headers={"X-Tenant": "a, b"}).body
    b = get(c.port, "/v", headers={"X-Tenant": "a,b"}).body
    d = get(c.port, "/v", headers={"X-Tenant": "b, a"}).body
    assert (a, b, d) == (b"/v #1\n", b"/v #1\n", b"/v #2\n"), (a, b, d)
    assert n_origin(org, "/v") == 2


# --------------------------------------------------------------------------------------
# If-Modified-Since without Last-Modified (RFC 9110 §13.1.3)


@pytest.mark.parametrize("offset", [0, 10], ids=["ims-equals-date", "ims-after-date"])
def test_ims_against_date_is_304(cairn, origin, offset):
    """Stored response without Last-Modified, Date D: If-Modified-Since >= D → 304 from the
    cache, no origin request."""
    date = time.time() - 30
    c, org = start(cairn, origin, {"/d": Numbered({"Cache-Control": "max-age=600",
                                                   "Date": http_date(date)})})
    assert get(c.port, "/d").status == 200
    r = get(c.port, "/d", headers={"If-Modified-Since": http_date(date + offset)})
    assert r.status == 304 and r.body == b"", \
        f"IMS >= stored Date on a stored response without Last-Modified: {r!r}"
    assert n_origin(org, "/d") == 1, "the conditional hit reached the origin"


def test_ims_before_date_is_200(cairn, origin):
    """If-Modified-Since earlier than the stored Date: the full response from the cache."""
    date = time.time() - 30
    c, org = start(cairn, origin, {"/d": Numbered({"Cache-Control": "max-age=600",
                                                   "Date": http_date(date)})})
    get(c.port, "/d")
    r = get(c.port, "/d", headers={"If-Modified-Since": http_date(date - 60)})
    assert r.status == 200 and r.body == b"/d #1\n" and is_hit(r), r
    assert n_origin(org, "/d") == 1
