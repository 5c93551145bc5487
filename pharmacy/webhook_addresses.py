"""Where webhooks may go: HTTPS to public internet addresses only.

An endpoint's address is checked when a clinic registers or changes it and again before every
send, since its name may resolve elsewhere by then (DNS rebinding): a host name that resolves to
any loopback, private, link-local, shared (100.64/10), reserved or multicast address is refused,
so that the portal cannot be made to post into the pharmacy's own network (server-side request
forgery, OWASP SSRF Prevention Cheat Sheet). The send then connects to an address checked here,
never to the name again. Hosts named in WEBHOOK_ALLOWED_PRIVATE_HOSTS (local development and
tests) may be private and plain HTTP."""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

DEFAULT_PORTS = {"https": 443, "http": 80}


class WebhookAddressRefused(ValidationError):
    """The address is not one webhooks may go to; the message says why, for the clinic."""


@dataclass(frozen=True)
class WebhookTarget:
    """A checked address: where to connect (ip, port) and what to ask for (host, path)."""

    scheme: str
    host: str
    port: int
    path: str  # with its query
    addresses: tuple[str, ...]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is local anyway
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _parts(url: str) -> tuple[SplitResult, int | None]:
    """The URL's parts and its port (a port out of range is refused here)."""
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError as refused:
        raise WebhookAddressRefused("Enter a valid URL.", code="invalid") from refused


def webhook_target(url: str) -> WebhookTarget:
    """The address of a webhook endpoint, checked and resolved, or WebhookAddressRefused."""
    parts, port = _parts(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookAddressRefused("Enter a URL with a host name.", code="invalid")
    allowed_private = host in settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS
    if parts.scheme != "https" and not (allowed_private and parts.scheme == "http"):
        raise WebhookAddressRefused("The URL must start with https://.", code="not_https")
    if parts.username or parts.password:
        raise WebhookAddressRefused(
            "Leave the user name and password out of the URL: every message is signed instead.",
            code="credentials",
        )
    port = port or DEFAULT_PORTS[parts.scheme]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as refused:
        raise WebhookAddressRefused(
            f"The host name {host} does not resolve to an address.", code="unresolved"
        ) from refused
    addresses = tuple(dict.fromkeys(info[4][0] for info in found))
    if not allowed_private and not all(_is_public(address) for address in addresses):
        raise WebhookAddressRefused(
            f"{host} is a private or local address: webhooks go to public internet addresses only.",
            code="private_address",
        )
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return WebhookTarget(parts.scheme, host, port, path, addresses)
