"""Test-time certificates for the TLS tests, made with the `openssl` command (OpenSSL 3.0).

    f = CertFactory(tmp_dir)
    ca = f.ca("ca")                                  # a self-signed CA
    other = f.ca("other-ca", cn="another test CA")   # a second, unrelated CA
    a = f.server("a", ca, ["a.test", "a2.test"])     # RSA 2048, signed by ca
    e = f.server("a-ec", ca, ["a.test"], key="ec")   # ECDSA P-256
    old = f.server("old", ca, ["origin.test"], expired=True)
    cl = f.client("alice", ca)                        # extendedKeyUsage clientAuth

Every certificate is a `Cert`: `.cert` (PEM file, the leaf only; CAs: the CA certificate),
`.key` (PEM private key), `.csr` (the PEM request it was made from: a PEM file that is not a
certificate), `.der` (the certificate's DER bytes, to compare with what a peer presented),
`.subject` (e.g. "CN=a.test,O=a") and `.org`, the O= field, which every certificate gets so a
test can tell two certificates for the same name apart (by default the certificate's name).

Nothing is cached between calls; the session fixture in test_tls.py builds a set once.
"""
from __future__ import annotations

import os
import secrets
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

OPENSSL = os.environ.get("OPENSSL", "openssl")


class OpenSSLError(AssertionError):
    pass


def openssl(*args, cwd=None, input=None) -> str:
    """Runs `openssl ARGS`; returns stdout, raises OpenSSLError with stderr on failure."""
    argv = [OPENSSL, *map(str, args)]
    p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, input=input, timeout=60)
    if p.returncode != 0:
        raise OpenSSLError(f"`{' '.join(argv)}` failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


@dataclass
class Cert:
    name: str
    cert: Path
    key: Path
    csr: Path | None = None
    issuer: "Cert | None" = None
    org: str = ""
    sans: list = field(default_factory=list)
    key_type: str = "rsa"

    @property
    def pem(self) -> str:
        return self.cert.read_text()

    @property
    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.pem)

    @property
    def subject(self) -> str:
        out = openssl("x509", "-in", self.cert, "-noout", "-subject", "-nameopt", "RFC2253")
        return out.strip().removeprefix("subject=")

    def dates(self) -> tuple[str, str]:
        out = openssl("x509", "-in", self.cert, "-noout", "-startdate", "-enddate")
        d = dict(ln.split("=", 1) for ln in out.strip().splitlines())
        return d["notBefore"], d["notAfter"]

    def __repr__(self):
        return f"<Cert {self.name} {self.key_type} O={self.org} SAN={self.sans}>"


_CA_CNF = """\
[ca]
default_ca = ca_default
[ca_default]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[policy_any]
commonName = supplied
organizationName = optional
"""


class CertFactory:
    """Makes keys and certificates into @directory (created if needed)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    # -- building blocks
    def _path(self, name, suffix) -> Path:
        return self.dir / f"{name}{suffix}"

    def new_key(self, name, key="rsa") -> Path:
        path = self._path(name, ".key")
        if key == "rsa":
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", path)
        elif key in ("ec", "ecdsa"):
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-pkeyopt", "ec_param_enc:named_curve", "-out", path)
        else:
            raise ValueError(f"key type {key!r}: rsa or ec")
        return path

    @staticmethod
    def _subj(cn, org):
        return f"/CN={cn}/O={org}" if org else f"/CN={cn}"

    def _ext_file(self, name, lines) -> Path:
        p = self._path(name, ".ext")
        p.write_text("".join(f"{ln}\n" for ln in lines))
        return p

    # -- certificates
    def ca(self, name="ca", cn=None, key="ec", days=3650) -> Cert:
        """A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign)."""
        cn = cn or f"cairn test CA {name}"
        k = self.new_key(name, key)
        pem = self._path(name, ".pem")
        ext = self._ext_file(name, [
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign",
            "subjectKeyIdentifier=hash",
        ])
        csr = self._path(name, ".csr")
        openssl("req", "-new", "-key", k, "-subj", self._subj(cn, name), "-out", csr)
        openssl("x509", "-req", "-in", csr, "-signkey", k, "-days", days, "-sha256",
                "-set_serial", self._serial(), "-extfile", ext, "-out", pem)
        return Cert(name, pem, k, csr, None, name, [], key)

    @staticmethod
    def _serial() -> str:
        return "0x" + secrets.token_hex(8)

    def leaf(self, name, ca: Cert, sans=(), key="rsa", cn=None, org=None, usage="server",
             days=365, expired=False) -> Cert:
        """A certificate for @sans (DNS names; "IP:", "URI:" and "email:" entries are those
        kinds of SAN) signed by @ca.
        usage: "server" (serverAuth), "client" (clientAuth) or "both". expired=True makes one
        whose validity ended a year ago (notBefore 2020-01-01, notAfter 2021-01-01)."""
        sans = list(sans)
        cn = cn or (sans[0] if sans else name)
        org = org if org is not None else name
        k = self.new_key(name, key)
        csr = self._path(name, ".csr")
        openssl("req", "-new", "-key", k, "-subj", self._subj(cn, org), "-out", csr)
        eku = {"server": "serverAuth", "client": "clientAuth",
               "both": "serverAuth,clientAuth"}[usage]
        ku = "digitalSignature,keyEncipherment" if key == "rsa" else "digitalSignature"
        lines = [
            "basicConstraints=critical,CA:FALSE",
            f"keyUsage=critical,{ku}",
            f"extendedKeyUsage={eku}",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid",
        ]
        if sans:
            lines.append("subjectAltName=" + ",".join(
                s if s.startswith(("IP:", "DNS:", "URI:", "email:")) else f"DNS:{s}" for s in sans))
        ext = self._ext_file(name, lines)
        pem = self._path(name, ".pem")
        if expired:
            self._sign_with_dates(csr, ca, ext, pem, "20200101000000Z", "20210101000000Z")
        else:
            openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-days", days,
                    "-sha256", "-set_serial", self._serial(), "-extfile", ext, "-out", pem)
        return Cert(name, pem, k, csr, ca, org, sans, key)

    def _sign_with_dates(self, csr, ca, ext, pem, start, end):
        """`openssl ca` with explicit -startdate/-enddate (openssl x509 in 3.0 has no
        -not_before/-not_after)."""
        d = self.dir / f"ca-db-{secrets.token_hex(4)}"
        d.mkdir()
        (d / "index.txt").write_text("")
        (d / "serial").write_text(secrets.token_hex(8).upper() + "\n")
        cnf = d / "ca.cnf"
        cnf.write_text(_CA_CNF.format(dir=d))
        openssl("ca", "-batch", "-notext", "-config", cnf, "-cert", ca.cert, "-keyfile", ca.key,
                "-in", csr, "-out", pem, "-startdate", start, "-enddate", end,
                "-extfile", ext)

    def server(self, name, ca, sans, key="rsa", **kw) -> Cert:
        return self.leaf(name, ca, sans, key=key, usage="server", **kw)

    def client(self, name, ca, cn=None, key="rsa", **kw) -> Cert:
        return self.leaf(name, ca, (), key=key, cn=cn or name, usage="client", **kw)

    def bundle(self, name, *certs: Cert) -> Path:
        """One PEM file holding several certificates (a CA bundle, or a chain)."""
        p = self._path(name, ".bundle.pem")
        p.write_text("".join(c.pem for c in certs))
        return p


def verify(cert: Cert, ca: Cert, purpose="sslserver") -> str:
    """`openssl verify`: returns its output, raises OpenSSLError when it fails."""
    return openssl("verify", "-purpose", purpose, "-CAfile", ca.cert, cert.cert)
