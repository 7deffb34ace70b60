"""Shared helpers for cairn's integration tests: ports, a tiny YAML emitter, and a raw
HTTP/1.1 client that can split pipelined responses and observe connection closes.

Everything here is stdlib-only and talks real sockets: no mocks.
"""
from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------
# ports


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """Returns a TCP port that was free on @host a moment ago."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_busy(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port or the port cannot be bound."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# YAML emitter (block style, strings quoted when they could be read as something else)

_PLAIN_OK = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*$")
_YAML_SPECIAL = {
    "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n",
}
_NUMBERISH = re.compile(r"^[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.\d+|0x[0-9a-fA-F]+|0o[0-7]+|\.inf|\.nan)$")


def _yaml_str(s: str) -> str:
    if (_PLAIN_OK.fullmatch(s) and s.lower() not in _YAML_SPECIAL and not _NUMBERISH.fullmatch(s)
            and not s.endswith(":")):
        return s
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _yaml_scalar(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    return _yaml_str(str(v))


def to_yaml(obj, indent: int = 0) -> str:
    """Serialises dicts/lists/scalars as block-style YAML."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = _yaml_scalar(k)
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 1)}")
            elif isinstance(v, list) and v:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 1)}")
            elif isinstance(v, dict):
                lines.append(f"{pad}{key}: {{}}\n")
            elif isinstance(v, list):
                lines.append(f"{pad}{key}: []\n")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(v)}\n")
        return "".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = to_yaml(item, indent + 1)
                # put the first line of the nested block after "- "
                first, _, rest = sub.partition("\n")
                lines.append(f"{pad}- {first.lstrip()}\n{rest}")
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}\n")
        return "".join(lines)
    return pad + _yaml_scalar(obj) + "\n"


# --------------------------------------------------------------------------------------
# raw HTTP/1.1 client


class ConnectionClosed(Exception):
    """The peer closed the connection before a complete response was read."""


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list = field(default_factory=list)  # [(name, value)] as received
    body: bytes = b""
    raw_head: bytes = b""
    informational: list = field(default_factory=list)  # 1xx responses seen before this one
    chunked: bool = False

    def header(self, name: str, default=None):
        """The first value of @name (case-insensitive), or @default."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name: str) -> list:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has(self, name: str) -> bool:
        return self.header(name) is not None

    def __repr__(self):
        b = self.body if len(self.body) < 200 else self.body[:200] + b"..."
        return f"<Response {self.status} {self.reason!r} headers={self.headers!r} body={b!r}>"


class RawConn:
    """A client connection that sends raw bytes and reads responses one by one, keeping
    leftover bytes so pipelined responses are split correctly."""

    def __init__(self, port=None, host="127.0.0.1", timeout=5.0, family=None, unix_path=None,
                 sock=None):
        if sock is not None:
            self.sock = sock
        elif unix_path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_path)
        else:
            fam = family or (socket.AF_INET6 if ":" in host else socket.AF_INET)
            self.sock = socket.socket(fam, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False
        self.timeout = timeout

    # -- plumbing
    def send(self, data: bytes):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self, deadline=None) -> bool:
        """Reads more bytes into the buffer; False on EOF."""
        if self.eof:
            return False
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("deadline reached")
            self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = True
            return False
        finally:
            if deadline is not None:
                self.sock.settimeout(self.timeout)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _read_line(self, deadline) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1:]
                return line
            if not self._fill(deadline):
                raise ConnectionClosed(f"closed while reading a line; have {self.buf!r}")

    def _read_exact(self, n, deadline) -> bytes:
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(
                    f"closed after {len(self.buf)} of {n} body bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_head(self, deadline):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            j = self.buf.find(b"\n\n")
            if i >= 0 and (j < 0 or i < j):
                head, self.buf = self.buf[:i], self.buf[i + 4:]
                return head
            if j >= 0:
                head, self.buf = self.buf[:j], self.buf[j + 2:]
                return head
            if not self._fill(deadline):
                if self.buf:
                    raise ConnectionClosed(f"closed in the middle of a response head: {self.buf!r}")
                raise ConnectionClosed("closed before any response byte")

    def read_response(self, head_request=False, timeout=None, skip_1xx=True) -> Response:
        """Reads one complete response. 1xx responses are collected into .informational
        (unless skip_1xx is False, in which case a 1xx is returned as is)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        infos = []
        while True:
            head = self._read_head(deadline)
            lines = head.replace(b"\r\n", b"\n").split(b"\n")
            m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
            if not m:
                raise AssertionError(f"invalid status line {lines[0]!r} (head {head!r})")
            version, status, reason = m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1")
            headers = []
            for ln in lines[1:]:
                if not ln:
                    continue
                if b":" not in ln:
                    raise AssertionError(f"invalid header line {ln!r} in {head!r}")
                k, v = ln.split(b":", 1)
                headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
            resp = Response(status, reason, version, headers, b"", head, infos)
            if 100 <= status < 200 and status != 101:
                if not skip_1xx:
                    return resp
                infos.append(resp)
                continue
            break
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if head_request or status in (204, 304):
            return resp
        if te is not None and "chunked" in te.lower():
            resp.chunked = True
            body = []
            while True:
                size_line = self._read_line(deadline).strip()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    # trailers
                    while True:
                        ln = self._read_line(deadline)
                        if ln in (b"\r\n", b"\n"):
                            break
                    break
                body.append(self._read_exact(size, deadline))
                crlf = self._read_exact(2, deadline)
                if crlf != b"\r\n":
                    raise AssertionError(f"bad chunk terminator {crlf!r}")
            resp.body = b"".join(body)
        elif cl is not None:
            resp.body = self._read_exact(int(cl), deadline)
        else:
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def request(self, method="GET", target="/", headers=None, body=b"", host="localhost",
                version="HTTP/1.1", timeout=None) -> Response:
        self.send(build_request(method, target, headers, body, host, version))
        return self.read_response(head_request=(method == "HEAD"), timeout=timeout)

    def wait_closed(self, timeout=2.0) -> bytes:
        """Waits until the peer closes; returns any extra bytes received. Raises
        AssertionError when the connection is still open after @timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(deadline):
                    extra, self.buf = self.buf, b""
                    return extra
            except (socket.timeout, TimeoutError):
                raise AssertionError(
                    f"server did not close the connection within {timeout}s "
                    f"(buffered {self.buf[:200]!r})")

    def is_open(self, wait=0.3) -> bool:
        """True when the peer has not closed within @wait seconds (and sent nothing)."""
        deadline = time.monotonic() + wait
        try:
            return self._fill(deadline)
        except (socket.timeout, TimeoutError):
            return True


def build_request(method="GET", target="/", headers=None, body=b"", host="localhost",
                  version="HTTP/1.1") -> bytes:
    if isinstance(body, str):
        body = body.encode()
    hs = []
    names = set()
    for k, v in (headers.items() if isinstance(headers, dict) else (headers or [])):
        hs.append(f"{k}: {v}\r\n")
        names.add(k.lower())
    if host is not None and "host" not in names:
        hs.insert(0, f"Host: {host}\r\n")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hs.append(f"Content-Length: {len(body)}\r\n")
    return (f"{method} {target} {version}\r\n" + "".join(hs) + "\r\n").encode("latin-1") + body


def raw(port, data: bytes, timeout=3.0, host="127.0.0.1", unix_path=None) -> bytes:
    """Sends @data and returns everything received until the peer closes or @timeout
    expires (whichever comes first)."""
    c = RawConn(port, host=host, timeout=timeout, unix_path=unix_path)
    try:
        c.send(data)
        deadline = time.monotonic() + timeout
        try:
            while c._fill(deadline):
                pass
        except (socket.timeout, TimeoutError):
            pass
        return c.buf
    finally:
        c.close()


def get(port, target="/", headers=None, host="localhost", timeout=5.0, method="GET",
        body=b"") -> Response:
    """One request on a fresh connection."""
    with RawConn(port, timeout=timeout) as c:
        return c.request(method, target, headers, body, host=host, timeout=timeout)


def parse_responses(data: bytes) -> list:
    """Splits a byte string holding complete responses (e.g. from raw())."""
    a, b = socket.socketpair()
    try:
        b.sendall(data)
        b.shutdown(socket.SHUT_WR)
        c = RawConn(sock=a, timeout=2)
        out = []
        while c.buf or not c.eof:
            try:
                out.append(c.read_response())
            except ConnectionClosed:
                break
        return out
    finally:
        a.close()
        b.close()


def c_unescape(s: str) -> bytes:
    """Decodes C escapes (\\r \\n \\t \\0 \\xHH \\\\ plus \\" and \\') into bytes."""
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        if i + 1 >= len(s):
            raise ValueError(f"dangling backslash in {s!r}")
        n = s[i + 1]
        simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"',
                  "'": b"'", "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "e": b"\x1b"}
        if n == "x":
            hx = s[i + 2:i + 4]
            if len(hx) != 2 or not re.match(r"^[0-9A-Fa-f]{2}$", hx):
                raise ValueError(f"bad \\x escape at {i} in {s!r}")
            out.append(int(hx, 16))
            i += 4
        elif n in simple:
            out += simple[n]
            i += 2
        else:
            raise ValueError(f"unknown escape \\{n} in {s!r}")
    return bytes(out)


def proc_status_kib(pid, field="VmRSS"):
    """A size field of /proc/<pid>/status (VmRSS, RssShmem, ...) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def wait_for(pred, timeout=5.0, interval=0.05, msg="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {msg}")


# --------------------------------------------------------------------------------------
# config builders


def static_route(body="ok\n", status=200, headers=None, name=None, **match):
    """A static route; match defaults to path_prefix "/"."""
    r = {}
    if name:
        r["name"] = name
    r["match"] = match or {"path_prefix": "/"}
    r["static"] = {"status": status, "body": body}
    if headers:
        r["static"]["headers"] = headers
    return r


def upstream(origin_or_address, **kw):
    addr = origin_or_address if isinstance(origin_or_address, str) else origin_or_address.address
    u = {"peers": [{"address": addr}], "connect_timeout": "1s", "read_timeout": "2s"}
    u.update(kw)
    return u


def proxy_config(origin_or_address, route_extra=None, upstream_extra=None, server=None,
                 match=None, extra_routes=()):
    """One upstream "o" and one proxy route (path_prefix "/" unless @match)."""
    route = {"name": "proxy", "match": match or {"path_prefix": "/"}, "upstream": "o"}
    route.update(route_extra or {})
    cfg = {
        "server": {"workers": 1, "header_timeout": "2s", "shutdown_grace": "5s"},
        "upstreams": {"o": upstream(origin_or_address, **(upstream_extra or {}))},
        "routes": [*extra_routes, route],
    }
    cfg["server"].update(server or {})
    return cfg
