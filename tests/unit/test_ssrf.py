"""SSRF rules of http nodes: which URLs pass, the allowlist, and connecting to the checked IP.

DNS answers for made-up hostnames come from a monkeypatched ``socket.getaddrinfo`` (the
test double for DNS); literal IPs and ``localhost`` use the real resolver, which answers
them without a network.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest

from wfrunner import ssrf
from wfrunner.errors import ConfigurationError, NodeError

ALLOW_HINT = "; allow it with WFRUNNER_HTTP_ALLOW"

REFUSED = [
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.1.2.3:8080/x?y=1", "127.1.2.3 is a loopback address"),
    ("http://10.1.2.3/", "10.1.2.3 is a private address"),
    ("http://172.16.0.1/", "172.16.0.1 is a private address"),
    ("https://172.31.255.254/", "172.31.255.254 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    (
        "http://169.254.169.254/latest/meta-data/",
        "169.254.169.254 is a link-local address (the cloud metadata service)",
    ),
    ("http://169.254.1.1/", "169.254.1.1 is a link-local address"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("http://100.64.0.1/", "100.64.0.1 is a shared (CGNAT) address"),
    ("http://100.127.255.254/", "100.127.255.254 is a shared (CGNAT) address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://192.0.2.1/", "192.0.2.1 is a special-purpose, non-public address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://[::]:8080/", ":: is an unspecified address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[fc00::1]/", "fc00::1 is a private address"),
    ("http://[fd12:3456::1]/", "fd12:3456::1 is a private address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    (
        "http://[::ffff:127.0.0.1]/",
        "::ffff:7f00:1 is a loopback address (IPv4 127.0.0.1 inside IPv6)",
    ),
    (
        "http://[::ffff:169.254.169.254]/",
        "::ffff:a9fe:a9fe is a link-local address (the cloud metadata service) "
        "(IPv4 169.254.169.254 inside IPv6)",
    ),
    ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1 is a private address (IPv4 10.0.0.1 inside IPv6)"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1:: is a loopback address (IPv4 127.0.0.1 inside IPv6)"),
    # other spellings of 127.0.0.1 are resolved by the C library, then refused
    ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback address"),
    ("http://0x7f.1/", "0x7f.1 resolves to 127.0.0.1, a loopback address"),
]

ALLOWED = [
    "http://8.8.8.8/",
    "https://1.1.1.1:8443/path?q=1",
    "http://172.32.0.1/",
    "http://100.128.0.1/",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",
    "http://[2002:808:808::]/",
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(NodeError) as info:
        ssrf.check_url("n1", url, [])
    assert str(info.value) == f"node 'n1': refusing to call {url}: {reason}{ALLOW_HINT}"


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed(url: str) -> None:
    ssrf.check_url("n1", url, [])


def test_localhost_is_refused() -> None:
    with pytest.raises(NodeError) as info:
        ssrf.check_url("n1", "http://localhost:8080/", [])
    assert str(info.value).startswith("node 'n1': refusing to call http://localhost:8080/: ")
    assert "localhost resolves to " in str(info.value)
    assert str(info.value).endswith(f", a loopback address{ALLOW_HINT}")


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "http://", "https:///x",
     "http://example.com:0/", "http://example.com:99999/", "//example.com/", 5, None],
)  # fmt: skip
def test_only_http_urls(url: Any) -> None:
    with pytest.raises(NodeError) as info:
        ssrf.check_url("n1", url, [])
    assert str(info.value) == (
        f"node 'n1': refusing {url!r}: "
        "config.url and its redirects must be http:// or https:// URLs"
    )


def test_message_hides_a_password() -> None:
    with pytest.raises(NodeError) as info:
        ssrf.check_url("n1", "http://bob:hunter2@127.0.0.1/x", [])
    assert "hunter2" not in str(info.value)
    assert "http://bob:***@127.0.0.1/x" in str(info.value)


# --- the allowlist -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:9000/"),
        (["10.0.0.0/8"], "http://10.200.3.4/"),
        ([" 192.168.0.0/16 ", "10.0.0.0/8"], "http://192.168.7.7/"),
        (["169.254.169.254/32"], "http://169.254.169.254/"),
        (["fd00::/8"], "http://[fd12::1]/"),
        (["[::1]"], "http://[::1]/"),
        (["10.0.0.0/8"], "http://[::ffff:10.1.1.1]/"),
    ],
)
def test_allow_by_cidr(allow: list[str], url: str) -> None:
    ssrf.check_url("n1", url, allow)


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        (["10.0.0.0/8"], "http://192.168.1.1/"),
        (["127.0.0.1"], "http://127.0.0.2/"),
        (["fd00::/8"], "http://[fc00::1]/"),
        (["example.com"], "http://10.0.0.1/"),
    ],
)
def test_allowlist_does_not_leak(allow: list[str], url: str) -> None:
    with pytest.raises(NodeError, match="refusing to call"):
        ssrf.check_url("n1", url, allow)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "fd00::/200", "not a host/x", "1.2.3.4.5:80"])
def test_malformed_allow_entries(entry: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^WFRUNNER_HTTP_ALLOW entry .* CIDR"):
        ssrf.Allowlist.parse([entry])


# --- hostnames (DNS test double) -----------------------------------------------------------


class FakeDNS:
    """``socket.getaddrinfo`` for made-up hosts: one list of IPs per lookup, in order."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: Counter[str] = Counter()
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups[host] += 1
        if not self.answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        result: list[Any] = []
        for ip in self.answers[host].pop(0):
            if ":" in ip:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
        return result


@pytest.fixture()
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[list[str]]]]:
    """Answers to fill in: ``dns["host"] = [[first lookup IPs], [second lookup IPs]]``."""
    fake = FakeDNS({})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake.answers


def test_hostname_resolving_to_a_private_address(dns: dict[str, list[list[str]]]) -> None:
    dns["intranet.example"] = [["10.0.0.5"]]
    with pytest.raises(NodeError) as info:
        ssrf.check_url("fetch", "https://intranet.example/api", [])
    assert str(info.value) == (
        "node 'fetch': refusing to call https://intranet.example/api: "
        f"intranet.example resolves to 10.0.0.5, a private address{ALLOW_HINT}"
    )


def test_every_address_must_be_public(dns: dict[str, list[list[str]]]) -> None:
    dns["mixed.example"] = [["8.8.8.8", "fd00::7"]]
    with pytest.raises(
        NodeError, match=re.escape("mixed.example resolves to fd00::7, a private address")
    ):
        ssrf.check_url("n1", "http://mixed.example/", [])


def test_a_public_hostname_resolves_to_its_checked_addresses(
    dns: dict[str, list[list[str]]],
) -> None:
    dns["api.example"] = [["93.184.216.34", "2606:2800:220:1::1"]]
    target = ssrf.resolve("n1", "https://api.example/v1", [])
    assert (target.host, target.port) == ("api.example", 443)
    assert [info[3][0] for info in target.addresses] == ["93.184.216.34", "2606:2800:220:1::1"]


def test_allow_by_hostname_is_exact_and_case_insensitive(
    dns: dict[str, list[list[str]]],
) -> None:
    ssrf.check_url("n1", "http://localhost/", ["LocalHost"])
    dns["db.internal"] = [["10.0.0.9"], ["10.0.0.9"]]
    dns["db.internal."] = [["10.0.0.9"]]
    dns["x.db.internal"] = [["10.0.0.9"]]
    ssrf.check_url("n1", "http://DB.internal/", ["db.internal"])
    ssrf.check_url("n1", "http://db.internal./", ["DB.Internal"])
    ssrf.check_url("n1", "http://db.internal/", ["10.0.0.0/24"])
    with pytest.raises(NodeError, match=re.escape("x.db.internal resolves to 10.0.0.9")):
        ssrf.check_url("n1", "http://x.db.internal/", ["db.internal"])
    with pytest.raises(NodeError, match=re.escape("127.0.0.1 is a loopback address")):
        ssrf.check_url("n1", "http://127.0.0.1/", ["localhost"])


def test_unresolvable_host_is_named(dns: dict[str, list[list[str]]]) -> None:
    dns["nothing.invalid"] = []
    with pytest.raises(NodeError) as info:
        ssrf.check_url("n1", "http://nothing.invalid/x", [])
    assert str(info.value) == (
        "node 'n1': cannot call http://nothing.invalid/x: host 'nothing.invalid' does not "
        "resolve (Name or service not known)"
    )


# --- connecting to the checked address (DNS rebinding) -------------------------------------


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        port = cast(ThreadingHTTPServer, self.server).server_port
        hops = {
            "/hop": "http://rebound.test/",
            "/same-origin": "/echo",
            "/other-origin": f"http://elsewhere.test:{port}/echo",
        }
        if self.path in hops:
            self.send_response(302)
            self.send_header("Location", hops[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        sni = getattr(self.server, "sni", None)
        echo = {"host": self.headers.get("Host"), "sni": sni}
        if self.headers.get("Authorization"):
            echo["authorization"] = self.headers["Authorization"]
        body = json.dumps(echo).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(httpd: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Echo))


def _get(url: str, allow: list[str], context: ssl.SSLContext | None = None) -> Any:
    with ssrf.build_opener("n1", allow, context).open(url, timeout=5) as response:
        return json.loads(response.read())


def test_connects_to_the_checked_address_with_the_original_host_header(
    dns: dict[str, list[list[str]]], http_port: int
) -> None:
    # a second lookup would fail: the connection must use the first, checked answer
    dns["api.internal.test"] = [["127.0.0.1"]]
    answer = _get(f"http://api.internal.test:{http_port}/", ["api.internal.test"])
    assert answer["host"] == f"api.internal.test:{http_port}"
    assert dict(socket.getaddrinfo.lookups) == {"api.internal.test": 1}  # type: ignore[attr-defined]


def test_dns_rebinding_after_the_check_is_not_followed(
    dns: dict[str, list[list[str]]], http_port: int
) -> None:
    dns["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    answer = _get(f"http://rebind.test:{http_port}/", ["127.0.0.0/8"])
    assert answer["host"] == f"rebind.test:{http_port}"
    assert dns["rebind.test"] == [["169.254.169.254"]]  # never asked for


def test_redirects_are_checked_again(dns: dict[str, list[list[str]]], http_port: int) -> None:
    dns["rebound.test"] = [["169.254.169.254"]]
    with pytest.raises(NodeError) as info:
        _get(f"http://127.0.0.1:{http_port}/hop", ["127.0.0.1"])
    assert str(info.value) == (
        "node 'n1': refusing to call http://rebound.test/: rebound.test resolves to "
        f"169.254.169.254, a link-local address (the cloud metadata service){ALLOW_HINT}"
    )


def test_credentials_do_not_follow_a_redirect_to_another_origin(
    dns: dict[str, list[list[str]]], http_port: int
) -> None:
    dns["elsewhere.test"] = [["127.0.0.1"]]
    opener = ssrf.build_opener("n1", ["127.0.0.1"])
    base = f"http://127.0.0.1:{http_port}"
    for path, kept in (("/same-origin", True), ("/other-origin", False)):
        request = urllib.request.Request(base + path, headers={"Authorization": "Bearer s3"})
        with opener.open(request, timeout=5) as response:
            answer = json.loads(response.read())
        assert ("authorization" in answer) is kept, (path, answer)


def test_no_proxy_from_the_environment(
    dns: dict[str, list[list[str]]], http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    dns["api.internal.test"] = [["127.0.0.1"]]
    assert _get(f"http://api.internal.test:{http_port}/", ["api.internal.test"])["host"]


# --- https: SNI and certificate checks use the hostname, the socket the checked IP ---------


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An https server on 127.0.0.1 whose certificate names ``secure.internal.test``."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = _certificate(tmp_path_factory.mktemp("tls"), "secure.internal.test")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_sni(sock: Any, server_name: str | None, _context: Any) -> None:
        httpd.sni = server_name  # type: ignore[attr-defined]

    context.sni_callback = remember_sni
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    for port in _serve(httpd):
        yield port, cert


def test_https_to_the_checked_address_verifies_the_hostname(
    dns: dict[str, list[list[str]]], tls: tuple[int, Path]
) -> None:
    port, cert = tls
    dns["secure.internal.test"] = [["127.0.0.1"]]
    context = ssl.create_default_context(cafile=str(cert))
    answer = _get(f"https://secure.internal.test:{port}/", ["127.0.0.1"], context)
    assert answer == {"host": f"secure.internal.test:{port}", "sni": "secure.internal.test"}


def test_https_certificate_for_another_name_is_refused(
    dns: dict[str, list[list[str]]], tls: tuple[int, Path]
) -> None:
    port, cert = tls
    dns["other.internal.test"] = [["127.0.0.1"]]
    context = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(f"https://other.internal.test:{port}/", ["127.0.0.1"], context)
