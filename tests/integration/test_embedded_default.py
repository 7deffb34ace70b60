"""`cairn` with no -c runs the embedded demo: proxy+cache on 127.0.0.1:8080 in front of a
demo origin on 127.0.0.1:8081, admin on 127.0.0.1:9901."""
import pytest

from helpers import get, port_is_busy

FIXED_PORTS = (8080, 8081, 9901)


def test_embedded_default_serves_demo(cairn):
    busy = [p for p in FIXED_PORTS if port_is_busy(p)]
    if busy:
        pytest.fail(f"cannot test the embedded default: 127.0.0.1 port(s) {busy} already in use "
                    f"(the demo needs {FIXED_PORTS} free)", pytrace=False)
    c = cairn(None)
    r = get(8080, "/hello.txt", host="127.0.0.1:8080")
    assert r.status == 200, r
    assert r.body == b"Hello from the cairn demo origin\n", r
    r2 = get(8080, "/hello.txt", host="127.0.0.1:8080")
    assert r2.status == 200 and r2.body == r.body, r2
    code = c.stop()
    assert code == 0, f"embedded default exited {code} on SIGTERM"
