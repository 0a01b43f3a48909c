"""What an ``http`` node may call: public addresses only, unless allowlisted (SSRF rules).

A URL passes when its scheme is http or https and *every* address its host resolves to is
public. Refused: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
(169.254/16 with the cloud metadata service, fe80::/10), unspecified, multicast, reserved,
CGNAT (100.64/10) and any other special-purpose address, also when wrapped in IPv6
(IPv4-mapped, IPv4-compatible, NAT64, 6to4). ``WFRUNNER_HTTP_ALLOW`` lists hosts
(exact, case-insensitive) or CIDRs that pass anyway.

DNS rebinding is defeated by :func:`build_opener`: each request (each redirect too) is
resolved once, checked, and the connection goes to the checked addresses, while the Host
header, TLS SNI and certificate checks keep using the URL's hostname. The opener uses no
proxy from the environment: a proxy would resolve the host itself, behind our back.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from wfrunner.deadline import Deadline
from wfrunner.errors import ConfigurationError, NodeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: one ``socket.getaddrinfo`` answer: family, type, proto, sockaddr
AddrInfo = tuple[int, int, int, tuple[Any, ...]]

SETTING = "WFRUNNER_HTTP_ALLOW"
_SCHEMES = {"http": 80, "https": 443}
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_METADATA = ipaddress.ip_address("169.254.169.254")
#: request headers not carried over a redirect to another origin
_CREDENTIALS = {"authorization", "cookie", "proxy-authorization"}


# --- addresses -----------------------------------------------------------------------------


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _category(address: IPAddress) -> str | None:
    """Why ``address`` itself is not public, as "a ... address", or ``None`` when it is."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        suffix = " (the cloud metadata service)" if address == _METADATA else ""
        return f"a link-local address{suffix}"
    if address.is_multicast:
        return "a multicast address"
    if address in _CGNAT:
        return "a shared (CGNAT) address"
    if any(address in net for net in _PRIVATE):
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a special-purpose, non-public address"
    return None


def refusal(address: IPAddress) -> str | None:
    """Why a connection to ``address`` is refused ("a loopback address"), else ``None``.

    An IPv6 address that stands for an IPv4 one is judged by the IPv4 address.
    """
    embedded = _embedded_ipv4(address)
    if embedded is None:
        return _category(address)
    reason = _category(embedded)
    return None if reason is None else f"{reason} (IPv4 {embedded} inside IPv6)"


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# --- the allowlist -------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowlist:
    """Hosts (exact, case-insensitive) and networks an http node may reach regardless."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        hosts, networks = set(), []
        for raw in entries:
            entry = raw.strip().strip("[]").lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if "/" in entry or ":" in entry:
                    raise ConfigurationError(
                        f"{SETTING} entry {raw!r} is neither a hostname nor a CIDR "
                        "such as 10.0.0.0/8 or fd00::/8"
                    ) from None
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        candidates = [address, _embedded_ipv4(address)]
        return any(
            ip is not None and ip.version == net.version and ip in net
            for ip in candidates
            for net in self.networks
        )


def _allowlist(allow: Sequence[str] | Allowlist) -> Allowlist:
    return allow if isinstance(allow, Allowlist) else Allowlist.parse(allow)


# --- URLs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A checked URL: its host and port and the addresses a connection may use."""

    url: str
    host: str
    port: int
    addresses: tuple[AddrInfo, ...]


def shown(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


def validate_url(node_id: str, url: Any) -> urllib.parse.SplitResult:
    """The parts of ``url`` when it is an http(s) URL with a host; no DNS lookup."""
    try:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:
        parts, port_ok = None, False
    if parts is None or not port_ok or parts.scheme not in _SCHEMES or not parts.hostname:
        raise NodeError(
            f"node {node_id!r}: refusing {url!r}: config.url and its redirects "
            "must be http:// or https:// URLs"
        )
    return parts


def _lookup(node_id: str, url: str, host: str, port: int) -> tuple[AddrInfo, ...]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise NodeError(
            f"node {node_id!r}: cannot call {shown(url)}: host {host!r} does not resolve ({reason})"
        ) from None
    unique = dict.fromkeys(
        (family, kind, proto, sockaddr) for family, kind, proto, _, sockaddr in answers
    )
    if not unique:
        raise NodeError(f"node {node_id!r}: cannot call {shown(url)}: host {host!r} has no address")
    return tuple(unique)


def _check_addresses(
    node_id: str, url: str, host: str, addresses: Sequence[AddrInfo], allow: Allowlist
) -> None:
    literal = _parse_ip(host) is not None
    for *_, sockaddr in addresses:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = refusal(address)
        if reason is None or allow.allows_address(address):
            continue
        what = f"{address} is {reason}" if literal else f"{host} resolves to {address}, {reason}"
        raise NodeError(
            f"node {node_id!r}: refusing to call {shown(url)}: {what}; allow it with {SETTING}"
        )


def resolve(node_id: str, url: Any, allow: Sequence[str] | Allowlist) -> Target:
    """Check ``url`` under the SSRF rules; the addresses a connection to it may use."""
    parts = validate_url(node_id, url)
    host = str(parts.hostname)
    port = parts.port or _SCHEMES[parts.scheme]
    addresses = _lookup(node_id, url, host, port)
    allowlist = _allowlist(allow)
    if not allowlist.allows_host(host):
        _check_addresses(node_id, url, host, addresses, allowlist)
    return Target(url, host, port, addresses)


def check_url(node_id: str, url: Any, allow: Sequence[str] | Allowlist) -> None:
    """Raise :class:`NodeError` unless an http node may call ``url``."""
    resolve(node_id, url, allow)


# --- connecting to the checked addresses only ----------------------------------------------


def _connector(target: Target, deadline: Deadline | None) -> Callable[..., socket.socket]:
    """A ``socket.create_connection`` stand-in that ignores the host it is given; with a
    ``deadline``, connects within the time it leaves and hands it the socket to watch."""

    def connect(
        _address: Any, timeout: Any = None, source_address: Any = None, **_: Any
    ) -> socket.socket:
        error: OSError = OSError(f"no address to connect to for {target.host}")
        for family, kind, proto, sockaddr in target.addresses:
            sock = socket.socket(family, kind, proto)
            try:
                if deadline is not None:  # TimeoutError, an OSError, once it has passed
                    left = deadline.remaining()
                    timeout = min(timeout, left) if isinstance(timeout, int | float) else left
                if isinstance(timeout, int | float):
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                if deadline is not None:
                    deadline.watch(sock)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
        raise error

    return connect


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(
        self, host: str, *, target: Target, deadline: Deadline | None = None, **kwargs: Any
    ) -> None:
        super().__init__(host, **kwargs)
        self._create_connection = _connector(target, deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address; SNI and certificate checks use the URL's hostname."""

    def __init__(
        self, host: str, *, target: Target, deadline: Deadline | None = None, **kwargs: Any
    ) -> None:
        super().__init__(host, **kwargs)
        self._create_connection = _connector(target, deadline)


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, node_id: str, allow: Allowlist, deadline: Deadline | None) -> None:
        super().__init__()
        self.node_id, self.allow, self.deadline = node_id, allow, deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        target = resolve(self.node_id, req.full_url, self.allow)
        connection = functools.partial(_PinnedHTTPConnection, target=target, deadline=self.deadline)
        return self.do_open(connection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(
        self,
        node_id: str,
        allow: Allowlist,
        context: ssl.SSLContext | None,
        deadline: Deadline | None,
    ) -> None:
        super().__init__(context=context)
        self.node_id, self.allow, self.ssl_context = node_id, allow, context
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        target = resolve(self.node_id, req.full_url, self.allow)
        connection = functools.partial(
            _PinnedHTTPSConnection, target=target, deadline=self.deadline
        )
        return self.do_open(connection, req, context=self.ssl_context)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or _SCHEMES.get(parts.scheme)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only; the next hop is resolved and checked anew.

    Credentials (``Authorization``, ``Cookie``) are not sent on to another origin.
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    def redirect_request(  # type: ignore[no-untyped-def]  # typeshed leaves args untyped
        self, req, fp, code, msg, headers, newurl
    ) -> urllib.request.Request | None:
        validate_url(self.node_id, newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            for name in [name for name in new.headers if name.lower() in _CREDENTIALS]:
                del new.headers[name]
        return new


def build_opener(
    node_id: str,
    allow: Sequence[str] | Allowlist,
    context: ssl.SSLContext | None = None,
    deadline: Deadline | None = None,
) -> urllib.request.OpenerDirector:
    """An opener for http(s) only that applies the SSRF rules to every request it sends.

    ``context`` is the TLS context (default: the system's, verifying certificates). A
    ``deadline`` bounds every connection the opener makes (redirects included) in all.
    """
    allowlist = _allowlist(allow)
    opener = urllib.request.OpenerDirector()
    for handler in (
        _CheckedHTTPHandler(node_id, allowlist, deadline),
        _CheckedHTTPSHandler(node_id, allowlist, context, deadline),
        _CheckedRedirects(node_id),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


__all__ = [
    "Allowlist",
    "Target",
    "build_opener",
    "check_url",
    "refusal",
    "resolve",
    "shown",
    "validate_url",
]
