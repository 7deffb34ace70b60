"""An HTTPS origin for the upstream-TLS tests: the recording `origins.Origin` (same
behaviours, same `.requests` and `.connections`) with each accepted connection wrapped in
TLS by the standard `ssl` module.

    o = TLSOrigin(cert, key, routes={"/": Normal(body=b"hi")}).start()
    o = TLSOrigin(cert, key, client_ca=ca_pem).start()      # requires a client certificate
    ... cairn's upstream: {peers: [{address: o.address}], tls: {sni: ..., ca: ...}}
    o.sni            # [server name sent by each client that got as far as the ClientHello]
    o.handshakes     # [Handshake(conn_id, version, sni, peer_subject)] completed handshakes
    o.tls_errors     # ["conn 1: [SSL: ...] ..."] handshakes that failed

The handshake runs in the connection's thread (a failing client does not hold up others).
A client that fails the handshake is counted in `.connections` and `.tls_errors`, never in
`.requests`.
"""
from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass

from origins import Origin


@dataclass
class Handshake:
    conn_id: int
    version: str
    cipher: str
    sni: str | None
    peer_subject: str | None  # the client certificate's subject ("CN=x,O=y"), or None
    resumed: bool = False     # the client resumed an earlier session


def _subject(cert):
    if not cert:
        return None
    parts = []
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            parts.append({"commonName": "CN", "organizationName": "O"}.get(k, k) + "=" + v)
    return ",".join(parts)


class TLSOrigin(Origin):
    def __init__(self, cert, key, routes=None, default=None, client_ca=None,
                 client_required=True, min_version=None, max_version=None, **kw):
        super().__init__(routes, default, **kw)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
        if client_ca is not None:
            ctx.load_verify_locations(str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED if client_required else ssl.CERT_OPTIONAL
        ctx.sni_callback = self._on_sni
        self.ctx = ctx
        self.sni: list = []
        self.handshakes: list[Handshake] = []
        self.tls_errors: list[str] = []
        self._tls_local = threading.local()

    def _on_sni(self, sslobj, server_name, ctx):
        with self._lock:
            self.sni.append(server_name)
        self._tls_local.sni = server_name
        return None

    def _serve(self, c, cid):
        self._tls_local.sni = None
        try:
            c.settimeout(10)
            s = self.ctx.wrap_socket(c, server_side=True, do_handshake_on_connect=True)
        except (ssl.SSLError, OSError) as e:
            with self._lock:
                self.tls_errors.append(f"conn {cid}: {e}")
                self._socks.discard(c)
            try:
                c.close()
            except OSError:
                pass
            return
        hs = Handshake(cid, s.version(), (s.cipher() or ("",))[0], self._tls_local.sni,
                       _subject(s.getpeercert()), s.session_reused)
        with self._lock:
            self.handshakes.append(hs)
            # wrap_socket detached @c: stop() must shut the TLS socket down instead
            self._socks.discard(c)
            self._socks.add(s)
        super()._serve(s, cid)
