"""A memory cache on a proxied route: fresh responses are served without the origin;
no-store responses are not stored; the access log reports the cache status."""
import json
import signal
import time

import pytest

from helpers import get, proxy_config
from origins import Normal


@pytest.fixture
def cached(cairn, origin):
    org = origin({
        "/fresh": Normal(200, b"cache me\n", headers={"Cache-Control": "public, max-age=60"}),
        "/nostore": Normal(200, b"do not store\n", headers={"Cache-Control": "no-store"}),
        "/short": Normal(200, b"short\n", headers={"Cache-Control": "max-age=1"}),
        "/private": Normal(200, b"private\n", headers={"Cache-Control": "private, max-age=60"}),
    })
    cfg = proxy_config(org, route_extra={"cache": "mem"})
    cfg["caches"] = {"mem": {"memory": {"size": "4MiB", "max_object": "64KiB"}}}
    return cairn(cfg), org


def count(org, path):
    return sum(1 for q in org.requests if q.path == path)


def test_fresh_response_served_from_cache(cached):
    c, org = cached
    bodies = [get(c.port, "/fresh").body for _ in range(4)]
    assert bodies == [b"cache me\n"] * 4, bodies
    assert count(org, "/fresh") == 1, f"origin saw {count(org, '/fresh')} requests for a max-age=60 response"


def test_no_store_not_cached(cached):
    c, org = cached
    for _ in range(3):
        assert get(c.port, "/nostore").body == b"do not store\n"
    assert count(org, "/nostore") == 3, "a no-store response was served from the cache"


def test_private_not_cached(cached):
    c, org = cached
    for _ in range(2):
        assert get(c.port, "/private").body == b"private\n"
    assert count(org, "/private") == 2, "a private response was stored in the shared cache"


def test_expiry(cached):
    c, org = cached
    assert get(c.port, "/short").status == 200
    assert get(c.port, "/short").status == 200
    assert count(org, "/short") == 1
    time.sleep(2.1)
    assert get(c.port, "/short").status == 200
    assert count(org, "/short") == 2, "an expired entry was served without revalidation"


def test_cache_status_logged(cached):
    c, org = cached
    get(c.port, "/fresh")
    get(c.port, "/fresh")
    assert c.stop(signal.SIGTERM, timeout=5) == 0
    entries = [json.loads(ln) for ln in c.access_log_lines()]
    statuses = [e["cache"] for e in entries if e["path"] == "/fresh"]
    assert len(statuses) == 2, entries
    assert statuses[0].upper() in ("MISS",) and statuses[1].upper() == "HIT", \
        f"cache statuses logged {statuses}, expected MISS then HIT"
