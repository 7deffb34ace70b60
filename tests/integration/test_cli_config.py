"""`cairn -t`, --version, --help, bad flags, and configuration diagnostics."""
import re

from helpers import free_port


def diag_lines(stderr, path):
    """[(line, col, message)] for every `path:LINE:COL: error: MSG` line of @stderr."""
    out = []
    for ln in stderr.splitlines():
        m = re.match(re.escape(str(path)) + r":(\d+):(\d+): error: (.+)$", ln)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


VALID = """\
server:
  workers: 2
  header_timeout: 1s
  max_header_size: 64KiB
admin:
  listen: "127.0.0.1:{admin}"
listeners:
  - listen: "127.0.0.1:{port}"
    name: main
upstreams:
  app:
    peers:
      - address: "127.0.0.1:{up}"
    connect_timeout: 500ms
    read_timeout: 2s
caches:
  small:
    memory:
      size: 1MiB
      max_object: 64KiB
routes:
  - name: hello
    match:
      path: /hello
    static:
      status: 200
      headers:
        Content-Type: text/plain
      body: "hello\\n"
  - name: app
    match:
      path_prefix: /
    upstream: app
    cache: small
"""


def valid_text():
    return VALID.format(admin=free_port(), port=free_port(), up=free_port())


def test_check_valid_config(cairn_cli, write_config):
    p = write_config(valid_text())
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 0, f"valid config rejected (exit {r.returncode}); stderr:\n{r.stderr}"
    assert "configuration OK" in r.stdout, f"`cairn -t` stdout lacks 'configuration OK': {r.stdout!r}"


def test_check_unknown_key_did_you_mean(cairn_cli, write_config):
    text = valid_text().replace("listeners:", "listner:")
    p = write_config(text)
    line = text.splitlines().index("listner:") + 1
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"expected exit 1 for an unknown key, got {r.returncode}; stderr:\n{r.stderr}"
    diags = diag_lines(r.stderr, p)
    hits = [d for d in diags if d[0] == line and "unknown key" in d[2]]
    assert hits, f"no `{p}:{line}:COL: error: unknown key ...` line in stderr:\n{r.stderr}"
    assert hits[0][1] == 1, f"unknown key reported at column {hits[0][1]}, expected 1: {hits[0]}"
    assert "did you mean" in hits[0][2] and "listeners" in hits[0][2], \
        f"no `did you mean ... listeners` suggestion in: {hits[0][2]!r}"


def test_check_unknown_nested_key(cairn_cli, write_config):
    text = valid_text().replace("  workers: 2\n", "  workers: 2\n  wrokers: 3\n")
    p = write_config(text)
    line = text.splitlines().index("  wrokers: 3") + 1
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    hits = [d for d in diag_lines(r.stderr, p) if d[0] == line]
    assert hits and hits[0][1] == 3, f"expected {p}:{line}:3 error for `wrokers`; stderr:\n{r.stderr}"
    assert "unknown key" in hits[0][2] and "workers" in hits[0][2], hits[0]


def test_check_wrong_type(cairn_cli, write_config):
    text = valid_text().replace("  workers: 2\n", "  workers: many\n")
    p = write_config(text)
    line = text.splitlines().index("  workers: many") + 1
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode} for workers: many; stderr:\n{r.stderr}"
    hits = [d for d in diag_lines(r.stderr, p) if d[0] == line]
    assert hits, f"no error at line {line} for `workers: many`; stderr:\n{r.stderr}"
    assert hits[0][1] in (3, 12), f"column {hits[0][1]} is neither the key (3) nor the value (12)"


def test_check_bad_duration_and_size(cairn_cli, write_config):
    text = valid_text().replace("header_timeout: 1s", "header_timeout: 1 fortnight") \
                       .replace("max_header_size: 64KiB", "max_header_size: 64 lots")
    p = write_config(text)
    lines = text.splitlines()
    l1 = lines.index("  header_timeout: 1 fortnight") + 1
    l2 = lines.index("  max_header_size: 64 lots") + 1
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    got = {d[0] for d in diag_lines(r.stderr, p)}
    assert {l1, l2} <= got, f"expected errors at lines {l1} and {l2}, got {sorted(got)}:\n{r.stderr}"


def test_check_undefined_upstream(cairn_cli, write_config):
    text = valid_text().replace("    upstream: app\n", "    upstream: nowhere\n")
    p = write_config(text)
    line = text.splitlines().index("    upstream: nowhere") + 1
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    hits = [d for d in diag_lines(r.stderr, p) if d[0] == line]
    assert hits, f"no error at line {line} for the undefined upstream; stderr:\n{r.stderr}"
    assert "nowhere" in hits[0][2], f"message does not name the upstream: {hits[0]}"


def test_check_undefined_cache(cairn_cli, write_config):
    text = valid_text().replace("    cache: small\n", "    cache: big\n")
    p = write_config(text)
    line = text.splitlines().index("    cache: big") + 1
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    hits = [d for d in diag_lines(r.stderr, p) if d[0] == line]
    assert hits and "big" in hits[0][2], f"no error naming cache `big` at line {line}:\n{r.stderr}"


def test_check_malformed_yaml(cairn_cli, write_config):
    text = "server:\n  workers: 2\nlisteners:\n  - listen: [127.0.0.1:8080\nroutes: []\n"
    p = write_config(text)
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode} for malformed YAML; stderr:\n{r.stderr}"
    diags = diag_lines(r.stderr, p)
    assert diags, f"no `{p}:LINE:COL: error:` line for malformed YAML; stderr:\n{r.stderr}"
    assert all(d[0] >= 4 for d in diags), f"YAML error reported before the bad line 4: {diags}"


def test_check_tab_indentation_is_an_error(cairn_cli, write_config):
    p = write_config("server:\n\tworkers: 2\n")
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    diags = diag_lines(r.stderr, p)
    assert diags and diags[0][0] == 2, f"expected an error on line 2; stderr:\n{r.stderr}"


def test_check_reports_every_error(cairn_cli, write_config):
    text = (
        "server:\n"                          # 1
        "  workers: many\n"                  # 2  wrong type
        "  bogus_key: 1\n"                   # 3  unknown key
        f"admin:\n  listen: \"127.0.0.1:{free_port()}\"\n"  # 4,5
        "listeners:\n"                       # 6
        f"  - listen: \"127.0.0.1:{free_port()}\"\n"  # 7
        "routes:\n"                          # 8
        "  - match:\n"                       # 9
        "      path_prefix: /\n"             # 10
        "    upstream: nowhere\n"            # 11 undefined upstream
        "  - match:\n"                       # 12
        "      path: /x\n"                   # 13
        "    redirect:\n"                    # 14
        "      to: /y\n"                     # 15
        "      status: 299\n"                # 16 invalid redirect status
    )
    p = write_config(text)
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    diags = diag_lines(r.stderr, p)
    got = {d[0]: d for d in diags}
    for line, what in [(2, "wrong type"), (3, "unknown key"), (11, "undefined upstream"),
                       (16, "invalid redirect status")]:
        assert line in got, f"{what} on line {line} not reported; got {diags}; stderr:\n{r.stderr}"
    assert got[2][1] in (3, 12), f"wrong-type column {got[2][1]} not 3 (key) or 12 (value)"
    assert got[3][1] == 3 and "unknown key" in got[3][2], f"bad unknown-key diagnostic {got[3]}"
    assert got[16][1] in (7, 15), f"redirect status column {got[16][1]} not 7 (key) or 15 (value)"
    assert got[11][1] in (5, 15), f"undefined upstream column {got[11][1]} not 5 (key) or 15 (value)"


def test_check_missing_file(cairn_cli, tmp_path):
    missing = tmp_path / "does-not-exist.yaml"
    r = cairn_cli("-t", "-c", missing)
    assert r.returncode == 1, f"exit {r.returncode} for a missing file; stderr:\n{r.stderr}"
    assert str(missing) in r.stderr, f"stderr does not name {missing}:\n{r.stderr}"


def test_run_missing_file_fails(cairn_cli, tmp_path):
    missing = tmp_path / "nope.yaml"
    r = cairn_cli("-c", missing)
    assert r.returncode == 1, f"exit {r.returncode} when running with a missing file:\n{r.stderr}"
    assert str(missing) in r.stderr, f"stderr does not name {missing}:\n{r.stderr}"


def test_run_invalid_config_fails_with_diagnostics(cairn_cli, write_config):
    text = valid_text().replace("listeners:", "listner:")
    p = write_config(text)
    r = cairn_cli("-c", p)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert diag_lines(r.stderr, p), f"no diagnostics when starting with a bad config:\n{r.stderr}"


def test_version(cairn_cli):
    r = cairn_cli("--version")
    assert r.returncode == 0, f"--version exit {r.returncode}: {r.stderr}"
    assert re.search(r"\d+\.\d+", r.stdout), f"--version prints no version number: {r.stdout!r}"
    assert "cairn" in r.stdout.lower(), f"--version output does not name cairn: {r.stdout!r}"


def test_help(cairn_cli):
    r = cairn_cli("--help")
    assert r.returncode == 0, f"--help exit {r.returncode}: {r.stderr}"
    assert "usage" in r.stdout.lower(), f"--help prints no usage on stdout: {r.stdout!r}"
    for flag in ("-c", "-t", "-d"):
        assert flag in r.stdout, f"--help does not mention {flag}: {r.stdout!r}"


def test_unknown_flag(cairn_cli):
    r = cairn_cli("--definitely-not-a-flag")
    assert r.returncode != 0, f"an unknown flag must fail (exit 2 preferred), got {r.returncode}"
    assert "usage" in (r.stderr + r.stdout).lower(), f"no usage text: {r.stderr!r}"


def test_dump_round_trips(cairn_cli, write_config, tmp_path):
    p = write_config(valid_text())
    r = cairn_cli("-T", "-c", p)
    assert r.returncode == 0, r.stderr
    dumped = r.stdout.split("configuration OK")[0]
    assert "listeners" in dumped and "header_timeout" in dumped, f"dump lacks keys:\n{dumped}"
    q = tmp_path / "dumped.yaml"
    q.write_text(dumped)
    r2 = cairn_cli("-t", "-c", q)
    assert r2.returncode == 0, f"the dumped configuration does not load again:\n{r2.stderr}\n{dumped}"


def test_tls_listener_serves_tls_and_never_plain_http(cairn_cli, cairn, write_config, tmp_path):
    """A listener with tls answers TLS only: a plain-HTTP request on that port gets no HTTP
    answer (the bytes are not a ClientHello), and a TLS client gets the route's response."""
    import socket
    import ssl
    import subprocess
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    port = free_port()
    text = valid_text().replace(
        "    name: main\n",
        f"    name: main\n  - listen: \"127.0.0.1:{port}\"\n    tls: {{cert: {cert}, key: {key}}}\n")
    p = write_config(text)
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 0, r.stdout + r.stderr
    cairn(text)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert b"HTTP/1.1" not in got and b"hello" not in got, got
    ctx = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while chunk := s.recv(4096):
                got += chunk
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"hello\n"), got


def test_ktls_is_refused_not_ignored(cairn_cli, write_config):
    """cairn's TLS runs over memory BIOs, which the kernel cannot take over: `tls.ktls` is not
    a key cairn accepts, so asking for it is a positioned error, never a silent no-op."""
    text = valid_text().replace(
        "    name: main\n",
        "    name: main\n  - listen: \"127.0.0.1:1\"\n    tls: {ktls: true}\n")
    p = write_config(text)
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, r.stdout + r.stderr
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "ktls" in ln)
    assert any(d[0] == line and 'unknown key "ktls"' in d[2] for d in diag_lines(r.stderr, p)), \
        r.stderr
