"""Found 2026-11-30 (outside audit, issue 12): upstream keep-alive pools were keyed by peer
address across upstreams, so an upstream with `keepalive_pool: 0` reused a connection that
another upstream with the same address had pooled, and one upstream's `keepalive_idle` decided
for the other's connections. Pools are keyed by upstream and peer."""
import time

from helpers import get, upstream


def config(o, a_extra, b_extra):
    return {
        "server": {"workers": 1},
        "upstreams": {"a": upstream(o, **a_extra), "b": upstream(o, **b_extra)},
        "routes": [{"match": {"path_prefix": "/a"}, "upstream": "a"},
                   {"match": {"path_prefix": "/b"}, "upstream": "b"}],
    }


def conn_of_last(o):
    return o.requests[-1].conn_id


def test_no_pool_upstream_never_takes_another_upstreams_connection(cairn, origin):
    o = origin()
    c = cairn(config(o, {"keepalive_pool": 0}, {}))
    assert get(c.port, "/b1").status == 200
    b_conn = conn_of_last(o)
    assert get(c.port, "/a1").status == 200
    assert conn_of_last(o) != b_conn, "upstream a (keepalive_pool: 0) used b's pooled connection"
    a_conn = conn_of_last(o)
    assert get(c.port, "/a2").status == 200
    assert conn_of_last(o) != a_conn, "upstream a pooled a connection despite keepalive_pool: 0"
    assert get(c.port, "/b2").status == 200
    assert conn_of_last(o) == b_conn, "b's pooled connection was lost"


def test_idle_timeout_is_the_upstreams_own(cairn, origin):
    o = origin()
    c = cairn(config(o, {"keepalive_idle": "200ms"}, {"keepalive_idle": "30s"}))
    assert get(c.port, "/b1").status == 200
    b_conn = conn_of_last(o)
    assert get(c.port, "/a1").status == 200
    assert conn_of_last(o) != b_conn
    a_conn = conn_of_last(o)
    time.sleep(0.6)  # a's idle connection is closed by a's 200ms; b's stays for 30s
    assert get(c.port, "/b2").status == 200
    assert conn_of_last(o) == b_conn, "b's connection was closed by a's keepalive_idle"
    assert get(c.port, "/a2").status == 200
    assert conn_of_last(o) != a_conn, "a's connection outlived its 200ms keepalive_idle"
