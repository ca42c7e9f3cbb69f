"""Where webhooks may be sent: the guard against server-side request forgery.

A webhook URL is chosen by a client, and the worker that posts to it sits
inside our network. Unless an operator allows private targets (for
development and tests), a target must be ``https`` and every address its
host resolves to must be a public unicast address: not private, loopback,
link-local (where cloud metadata services live), multicast, reserved,
unspecified, shared (CGNAT) or documentation space, in IPv4 or IPv6, whether
written as a name, in dotted, decimal, hexadecimal or octal IPv4, or as an
IPv4-mapped, NAT64 or 6to4 IPv6 address. The check runs when the webhook is
created or changed, and again on the addresses resolved at each delivery,
which the worker then connects to, so a name re-pointed after the check
(DNS rebinding) cannot reach inside.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# Metadata services that live on public-looking or special names.
BLOCKED_NAMES = frozenset(
    {"localhost", "metadata", "metadata.google.internal", "instance-data"}
)
# IPv6 prefixes that embed an IPv4 address, and where it sits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
# Ranges that are not public but that Python's tables (3.11) call global.
NOT_PUBLIC = tuple(
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",  # shared address space (CGNAT)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # former 6to4 relays
        "64:ff9b:1::/48",  # local-use NAT64
        "fec0::/10",  # former site-local
    )
)
# Control characters, space and DEL: no valid URL holds them, and the HTTP
# client refuses them only when it is too late.
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")


class TargetRefused(ValueError):
    """The URL may not be a webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, by the system's resolver."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"the host {host!r} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(
    url: str, *, allow_private: bool, resolve: Resolver = system_resolver
) -> Target:
    """Check a webhook URL and resolve it, or raise TargetRefused."""
    if UNSAFE_CHARACTERS.search(url):
        raise TargetRefused("the URL holds a control character or a space")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("the URL is malformed") from exc
    if port == 0:
        raise TargetRefused("the URL's port must be between 1 and 65535")
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed_schemes:
        raise TargetRefused("the URL must use https")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            "the URL must not hold credentials; authenticate deliveries by "
            "their signature"
        )
    port = port or (443 if scheme == "https" else 80)
    if allow_private:
        return Target(url, scheme, host, port, ())

    if host.lower() in BLOCKED_NAMES or host.lower().endswith(".localhost"):
        raise TargetRefused(f"the host {host!r} is not a public address")
    literal = parse_ip_literal(host)
    addresses = [str(literal)] if literal else list(resolve(host, port))
    if not addresses:
        raise TargetRefused(f"the host {host!r} does not resolve")
    for address in addresses:
        if not is_public(ipaddress.ip_address(address.split("%", 1)[0])):
            raise TargetRefused(
                f"the host {host!r} resolves to {address}, which is not a "
                "public address"
            )
    return Target(url, scheme, host, port, tuple(addresses))


def parse_ip_literal(host: str) -> IPAddress | None:
    """``host`` as an IP address, in any form a resolver would accept.

    ``inet_aton`` reads the legacy IPv4 forms too (``2130706433``,
    ``0x7f.1``, ``0177.0.0.1``), which ``ipaddress`` refuses but which the
    system's resolver, and so the HTTP client, would connect to.
    """
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address, embedded forms unwrapped."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    if any(address in network for network in NOT_PUBLIC):
        return False
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or address in IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated) ::a.b.c.d, but not :: or ::1.
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None
