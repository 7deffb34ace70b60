"""A scriptable, deliberately misbehaving HTTP/1.1 origin built on raw sockets.

    o = Origin({"/slow": Slow(delay_headers=2), "/big": Blob(5 << 20)}).start()
    ... point cairn at 127.0.0.1:o.port ...
    o.requests[-1].header("x-forwarded-for")
    o.connections            # TCP connections accepted so far
    o.stop()

Each request is parsed (request line, headers, Content-Length or chunked body), recorded in
`o.requests`, then handed to the behaviour registered for its path (exact path, or the
longest registered prefix ending in "*"; default: Normal()). A behaviour writes whatever
bytes it likes on the socket and returns True to keep the connection alive.
"""
from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class RecordedRequest:
    method: str
    target: str
    version: str
    headers: list  # [(name, value)] in arrival order
    body: bytes
    conn_id: int
    chunked: bool = False
    time: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    def to_json(self):
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": self.headers,
            "body_len": len(self.body),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "chunked": self.chunked,
            "conn_id": self.conn_id,
        }


class BadRequest(Exception):
    pass


# --------------------------------------------------------------------------------------
# behaviours


def _head(status=200, reason=None, headers=None) -> bytes:
    reasons = {200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
               301: "Moved Permanently", 302: "Found", 304: "Not Modified",
               400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
               502: "Bad Gateway", 503: "Service Unavailable"}
    r = reason if reason is not None else reasons.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {r}\r\n"]
    for k, v in (headers.items() if isinstance(headers, dict) else (headers or [])):
        lines.append(f"{k}: {v}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def _has(headers, name):
    n = name.lower()
    it = headers.items() if isinstance(headers, dict) else headers
    return any(k.lower() == n for k, _ in it)


class Behaviour:
    def handle(self, origin: "Origin", req: RecordedRequest, sock: socket.socket) -> bool:
        raise NotImplementedError


class Normal(Behaviour):
    """A well-formed Content-Length response."""

    def __init__(self, status=200, body=b"ok\n", headers=None, reason=None,
                 content_type="text/plain"):
        self.status, self.reason = status, reason
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
        self.content_type = content_type

    def handle(self, origin, req, sock):
        hs = list(self.headers)
        if self.content_type and not _has(hs, "content-type"):
            hs.append(("Content-Type", self.content_type))
        if not _has(hs, "content-length") and self.status not in (204, 304) and not (100 <= self.status < 200):
            hs.append(("Content-Length", str(len(self.body))))
        body = b"" if req.method == "HEAD" or self.status in (204, 304) else self.body
        sock.sendall(_head(self.status, self.reason, hs) + body)
        return True


class Echo(Behaviour):
    """200 with a JSON description of the request (headers, body length and sha256).
    With echo_body=True the request body itself is sent back instead."""

    def __init__(self, echo_body=False, chunked=False, headers=None):
        self.echo_body, self.chunked = echo_body, chunked
        self.headers = list((headers or {}).items())

    def handle(self, origin, req, sock):
        body = req.body if self.echo_body else json.dumps(req.to_json()).encode()
        ctype = "application/octet-stream" if self.echo_body else "application/json"
        hs = [("Content-Type", ctype)] + self.headers
        if self.chunked:
            hs.append(("Transfer-Encoding", "chunked"))
            sock.sendall(_head(200, None, hs))
            for i in range(0, len(body), 65536):
                piece = body[i:i + 65536]
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        else:
            hs.append(("Content-Length", str(len(body))))
            sock.sendall(_head(200, None, hs) + body)
        return True


def blob(size: int, seed: int = 1) -> bytes:
    """Deterministic pseudo-random bytes (fast: sha256 in counter mode)."""
    out = bytearray()
    ctr = 0
    base = seed.to_bytes(8, "little")
    while len(out) < size:
        out += hashlib.sha256(base + ctr.to_bytes(8, "little")).digest() * 64
        ctr += 1
    return bytes(out[:size])


class Blob(Behaviour):
    """A large deterministic body, Content-Length or chunked (chunk_size bytes each)."""

    def __init__(self, size, seed=1, chunked=False, chunk_size=65536, headers=None):
        self.body = blob(size, seed)
        self.chunked, self.chunk_size = chunked, chunk_size
        self.headers = list((headers or {}).items())

    @property
    def sha256(self):
        return hashlib.sha256(self.body).hexdigest()

    def handle(self, origin, req, sock):
        hs = [("Content-Type", "application/octet-stream")] + self.headers
        if self.chunked:
            hs.append(("Transfer-Encoding", "chunked"))
            sock.sendall(_head(200, None, hs))
            if req.method != "HEAD":
                for i in range(0, len(self.body), self.chunk_size):
                    piece = self.body[i:i + self.chunk_size]
                    sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
        else:
            hs.append(("Content-Length", str(len(self.body))))
            sock.sendall(_head(200, None, hs) + (b"" if req.method == "HEAD" else self.body))
        return True


class Slow(Behaviour):
    """Waits delay_headers seconds before the head, then sends the body in @chunks pieces
    with chunk_delay seconds between them (Content-Length framing unless chunked=True)."""

    def __init__(self, delay_headers=0.0, chunk_delay=0.0, body=b"slow body\n", chunks=1,
                 chunked=False, status=200):
        self.delay_headers, self.chunk_delay = delay_headers, chunk_delay
        self.body = body.encode() if isinstance(body, str) else body
        self.chunks, self.chunked, self.status = max(1, chunks), chunked, status

    def handle(self, origin, req, sock):
        if origin.sleep(self.delay_headers):
            return False
        hs = [("Content-Type", "text/plain")]
        if self.chunked:
            hs.append(("Transfer-Encoding", "chunked"))
        else:
            hs.append(("Content-Length", str(len(self.body))))
        sock.sendall(_head(self.status, None, hs))
        n = len(self.body)
        step = max(1, -(-n // self.chunks))
        for i in range(0, n, step):
            if i and origin.sleep(self.chunk_delay):
                return False
            piece = self.body[i:i + step]
            sock.sendall((b"%x\r\n" % len(piece) + piece + b"\r\n") if self.chunked else piece)
        if self.chunked:
            sock.sendall(b"0\r\n\r\n")
        return True


class Chunked(Behaviour):
    """A chunked response made of the given pieces, optionally with trailers."""

    def __init__(self, pieces=(b"hello ", b"chunked ", b"world\n"), trailers=None, headers=None,
                 chunk_ext=None):
        self.pieces = [p.encode() if isinstance(p, str) else p for p in pieces]
        self.trailers = trailers or {}
        self.headers = list((headers or {}).items())
        self.chunk_ext = chunk_ext

    @property
    def body(self):
        return b"".join(self.pieces)

    def handle(self, origin, req, sock):
        hs = [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")] + self.headers
        out = [_head(200, None, hs)]
        for p in self.pieces:
            ext = (";" + self.chunk_ext).encode() if self.chunk_ext else b""
            out.append(b"%x" % len(p) + ext + b"\r\n" + p + b"\r\n")
        out.append(b"0\r\n")
        for k, v in self.trailers.items():
            out.append(f"{k}: {v}\r\n".encode())
        out.append(b"\r\n")
        sock.sendall(b"".join(out))
        return True


class Truncated(Behaviour):
    """Announces Content-Length: declared but sends only @send bytes, then closes."""

    def __init__(self, declared=100000, send=1000, chunked=False):
        self.declared, self.send = declared, send
        self.chunked = chunked

    def handle(self, origin, req, sock):
        body = b"x" * self.send
        if self.chunked:
            sock.sendall(_head(200, None, [("Content-Type", "text/plain"),
                                           ("Transfer-Encoding", "chunked")])
                         + b"%x\r\n" % self.declared + body)
        else:
            sock.sendall(_head(200, None, [("Content-Type", "text/plain"),
                                           ("Content-Length", str(self.declared))]) + body)
        time.sleep(0.05)
        return False


def rst_close(sock):
    """Closes @sock with an RST (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Reset(Behaviour):
    """Sends @partial bytes (possibly none) then resets the connection."""

    def __init__(self, partial=b"", delay=0.0):
        self.partial, self.delay = partial, delay

    def handle(self, origin, req, sock):
        if self.delay and origin.sleep(self.delay):
            return False
        if self.partial:
            sock.sendall(self.partial)
        rst_close(sock)
        return False


class HugeHeaders(Behaviour):
    """A response whose head carries @count headers of @size bytes each."""

    def __init__(self, size=70000, count=1):
        self.size, self.count = size, count

    def handle(self, origin, req, sock):
        hs = [(f"X-Huge-{i}", "h" * self.size) for i in range(self.count)]
        hs += [("Content-Type", "text/plain"), ("Content-Length", "3")]
        sock.sendall(_head(200, None, hs) + b"ok\n")
        return True


class Raw(Behaviour):
    """Sends exactly @data, then closes (close=True) or keeps the connection."""

    def __init__(self, data: bytes, close=True):
        self.data, self.close = data, close

    def handle(self, origin, req, sock):
        sock.sendall(self.data)
        if self.close:
            time.sleep(0.05)
        return not self.close


def BadFraming(kind="cl+te"):
    """Canned malformed responses."""
    canned = {
        "cl+te": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "bad-status": b"HTTP/1.1 2x0 Broken\r\nContent-Length: 2\r\n\r\nok",
        "garbage": b"THIS IS NOT HTTP\r\n\r\n",
        "double-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!",
        "bad-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
        "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    }
    return Raw(canned[kind], close=True)


class Func(Behaviour):
    """Calls fn(origin, req, sock) -> keep_alive. With before_body=True it runs as soon as
    the request head has arrived (the body is left unread; keep_alive should be False)."""

    def __init__(self, fn, before_body=False):
        self.fn = fn
        self.before_body = before_body

    def handle(self, origin, req, sock):
        return bool(self.fn(origin, req, sock))


# --------------------------------------------------------------------------------------
# the server


class Origin:
    def __init__(self, routes=None, default=None, host="127.0.0.1", keepalive=True,
                 max_head=1 << 20):
        self.routes = dict(routes or {})
        self.default = default or Normal()
        self.host = host
        self.keepalive = keepalive
        self.max_head = max_head
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: set = set()
        self._threads: list = []
        self._lsock = None
        self.port = None

    # -- control
    def route(self, path, behaviour):
        self.routes[path] = behaviour
        return self

    def start(self):
        s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                          socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, 0))
        s.listen(128)
        s.settimeout(0.1)
        self._lsock = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"origin-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    @property
    def address(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def stop(self):
        self._stop.set()
        if self._lsock:
            try:
                self._lsock.close()
            except OSError:
                pass
        with self._lock:
            socks = list(self._socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=2)

    def sleep(self, seconds) -> bool:
        """Sleeps; True when the origin is being stopped."""
        return self._stop.wait(seconds) if seconds else self._stop.is_set()

    def reset_log(self):
        with self._lock:
            self.requests.clear()
            self.connections = 0

    def wait_requests(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= n:
                return self.requests
            time.sleep(0.02)
        raise AssertionError(f"origin saw {len(self.requests)} requests, expected {n}")

    # -- internals
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self.connections += 1
                cid = self.connections
                self._socks.add(c)
            t = threading.Thread(target=self._serve, args=(c, cid), daemon=True)
            t.start()
            self._threads.append(t)

    def _behaviour(self, path):
        if path in self.routes:
            return self.routes[path]
        best = None
        for k, b in self.routes.items():
            if k.endswith("*") and path.startswith(k[:-1]):
                if best is None or len(k) > len(best[0]):
                    best = (k, b)
        return best[1] if best else self.default

    def _serve(self, c, cid):
        buf = b""
        try:
            c.settimeout(30)
            while not self._stop.is_set():
                try:
                    req, buf = self._read_request(c, buf, cid)
                except BadRequest as e:
                    self.errors.append(str(e))
                    try:
                        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    except OSError:
                        pass
                    break
                if req is None:
                    break
                with self._lock:
                    self.requests.append(req)
                keep = self._behaviour(req.path).handle(self, req, c)
                conn_hdr = (req.header("connection") or "").lower()
                if not keep or not self.keepalive or "close" in conn_hdr or req.version == "HTTP/1.0":
                    break
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._socks.discard(c)
            try:
                c.close()
            except OSError:
                pass

    def _recv(self, c):
        d = c.recv(65536)
        return d

    def _read_request(self, c, buf, cid):
        while b"\r\n\r\n" not in buf:
            if len(buf) > self.max_head:
                raise BadRequest("request head too large")
            d = self._recv(c)
            if not d:
                if buf:
                    self.errors.append(f"connection closed mid-head: {buf[:200]!r}")
                return None, b""
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise BadRequest(f"bad request line {lines[0]!r}")
        method, target, version = (p.decode("latin-1") for p in parts)
        headers = []
        for ln in lines[1:]:
            if b":" not in ln:
                raise BadRequest(f"bad header line {ln!r}")
            k, v = ln.split(b":", 1)
            headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        req = RecordedRequest(method, target, version, headers, b"", cid)
        if getattr(self._behaviour(req.path), "before_body", False):
            # the behaviour answers right after the head; the body is never read
            return req, b""
        te = req.header("transfer-encoding")
        cl = req.header("content-length")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise BadRequest(f"unsupported transfer-encoding {te!r}")
            req.chunked = True
            body = bytearray()
            while True:
                while b"\r\n" not in buf:
                    d = self._recv(c)
                    if not d:
                        raise BadRequest("closed inside chunked body")
                    buf += d
                line, buf = buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        while b"\r\n" not in buf:
                            d = self._recv(c)
                            if not d:
                                raise BadRequest("closed inside trailers")
                            buf += d
                        tl, buf = buf.split(b"\r\n", 1)
                        if not tl:
                            break
                    break
                while len(buf) < size + 2:
                    d = self._recv(c)
                    if not d:
                        raise BadRequest("closed inside chunk")
                    buf += d
                body += buf[:size]
                if buf[size:size + 2] != b"\r\n":
                    raise BadRequest("bad chunk terminator")
                buf = buf[size + 2:]
            req.body = bytes(body)
        elif cl is not None:
            n = int(cl)
            while len(buf) < n:
                d = self._recv(c)
                if not d:
                    raise BadRequest(f"closed after {len(buf)} of {n} body bytes")
                buf += d
            req.body, buf = buf[:n], buf[n:]
        return req, buf


# --------------------------------------------------------------------------------------
# behaviours for the cache and coalescing tests (test_cache_*.py, test_coalescing.py)


class Sequence(Behaviour):
    """The n-th request handled by this behaviour (0-based) goes to behaviours[n]; the last
    one handles every later request. .count is the number of requests seen."""

    def __init__(self, *behaviours):
        self.behaviours = list(behaviours)
        self.count = 0
        self._lock = threading.Lock()

    def handle(self, origin, req, sock):
        with self._lock:
            i = self.count
            self.count += 1
        return self.behaviours[min(i, len(self.behaviours) - 1)].handle(origin, req, sock)


class Validating(Behaviour):
    """A representation that answers a matching If-None-Match (weak comparison) or an
    If-Modified-Since not older than last_modified with 304 (carrying the same headers,
    no body), else 200 with the body. Every attribute may be changed between requests:
    .body, .etag (None = none), .last_modified (HTTP-date string or None), .headers (dict,
    sent on 200 and 304), .status. .sent_304 / .sent_200 count the answers."""

    def __init__(self, body=b"validated\n", etag='"v1"', last_modified=None, headers=None,
                 status=200):
        self.body = body.encode() if isinstance(body, str) else body
        self.etag, self.last_modified = etag, last_modified
        self.headers = dict(headers or {})
        self.status = status
        self.sent_304 = self.sent_200 = 0

    def _not_modified(self, req):
        inm = req.header("if-none-match")
        if inm is not None:
            if self.etag is None:
                return False
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return "*" in tags or self.etag.removeprefix("W/") in tags
        ims = req.header("if-modified-since")
        if ims is not None and self.last_modified is not None:
            from email.utils import parsedate_to_datetime
            try:
                return parsedate_to_datetime(ims) >= parsedate_to_datetime(self.last_modified)
            except (TypeError, ValueError):
                return False
        return False

    def handle(self, origin, req, sock):
        hs = list(self.headers.items())
        if self.etag is not None:
            hs.append(("ETag", self.etag))
        if self.last_modified is not None:
            hs.append(("Last-Modified", self.last_modified))
        if req.method in ("GET", "HEAD") and self._not_modified(req):
            self.sent_304 += 1
            sock.sendall(_head(304, None, hs))
            return True
        self.sent_200 += 1
        hs += [("Content-Type", "text/plain"), ("Content-Length", str(len(self.body)))]
        sock.sendall(_head(self.status, None, hs) + (b"" if req.method == "HEAD" else self.body))
        return True


class Numbered(Behaviour):
    """@status with body b"<target> #<n>\\n", n being the 1-based number of requests for that
    target (path + query) this behaviour has answered, plus @headers: a test can tell which
    fetch a response came from. .count is the total over all targets."""

    def __init__(self, headers=None, status=200):
        self.headers = dict(headers or {})
        self.status = status
        self.count = 0
        self.counts = {}
        self._lock = threading.Lock()

    def handle(self, origin, req, sock):
        with self._lock:
            self.count += 1
            n = self.counts[req.target] = self.counts.get(req.target, 0) + 1
        body = f"{req.target} #{n}\n".encode()
        hs = list(self.headers.items()) + [("Content-Type", "text/plain"),
                                           ("Content-Length", str(len(body)))]
        sock.sendall(_head(self.status, None, hs) + (b"" if req.method == "HEAD" else body))
        return True


class Stream(Behaviour):
    """Waits delay_headers seconds, sends the head (@headers plus Content-Length, or chunked
    framing), then @body in chunk_size pieces with chunk_delay seconds between them. With
    abort_after=N the connection is reset (rst=True) or closed after N body bytes. With
    first_chunk=N the first piece is N bytes (the rest chunk_size each). Records
    time.monotonic() per request in .head_times, .first_body_times and .done_times."""

    def __init__(self, body, headers=None, delay_headers=0.0, chunk_size=65536,
                 chunk_delay=0.0, chunked=False, abort_after=None, rst=True, status=200,
                 first_chunk=None):
        self.first_chunk = first_chunk
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = dict(headers or {})
        self.delay_headers, self.chunk_size, self.chunk_delay = delay_headers, chunk_size, chunk_delay
        self.chunked, self.abort_after, self.rst, self.status = chunked, abort_after, rst, status
        self.head_times, self.first_body_times, self.done_times = [], [], []

    @property
    def sha256(self):
        return hashlib.sha256(self.body).hexdigest()

    def handle(self, origin, req, sock):
        if origin.sleep(self.delay_headers):
            return False
        hs = list(self.headers.items())
        if not _has(hs, "content-type"):
            hs.append(("Content-Type", "application/octet-stream"))
        if self.chunked:
            hs.append(("Transfer-Encoding", "chunked"))
        else:
            hs.append(("Content-Length", str(len(self.body))))
        sock.sendall(_head(self.status, None, hs))
        self.head_times.append(time.monotonic())
        if req.method == "HEAD":
            self.done_times.append(time.monotonic())
            return True
        body = self.body
        limit = len(body) if self.abort_after is None else min(self.abort_after, len(body))
        sent = 0
        while sent < limit:
            if sent and origin.sleep(self.chunk_delay):
                return False
            size = self.first_chunk if (sent == 0 and self.first_chunk) else self.chunk_size
            piece = body[sent:min(sent + size, limit)]
            if sent == 0:
                self.first_body_times.append(time.monotonic())
            sock.sendall((b"%x\r\n" % len(piece) + piece + b"\r\n") if self.chunked else piece)
            sent += len(piece)
        if self.abort_after is not None:
            time.sleep(0.05)
            if self.rst:
                rst_close(sock)
            return False
        if self.chunked:
            sock.sendall(b"0\r\n\r\n")
        self.done_times.append(time.monotonic())
        return True
