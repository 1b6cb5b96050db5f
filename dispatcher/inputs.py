"""Checks on untrusted input shared by the API, the submit task, the sandbox and the provider adapters.

Each returns a problem for a user to read (or a bool), never raises on odd input: callers turn the
problem into a 422 naming the field, a rejection, or a refused value.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from dispatcher.errors import Loc

# Dates further ahead are mistakes (a year typed 2205), and near year 9999 time-zone arithmetic overflows.
MAX_YEARS_AHEAD = 10
# A contact's custom fields are stored on the contact and copied into every personalised message:
# bounded so one request cannot store megabytes per contact (a name, a city, an order number fit easily).
MAX_FIELDS = 50
MAX_FIELD_NAME = 64
MAX_FIELD_VALUE = 1024  # as long as a WhatsApp template parameter may be
# What `@name` in a text can refer to (digits alone for WhatsApp's {{1}} data).
FIELD_NAME = re.compile(r"[A-Za-z0-9_]+")


def ascii_digits(text: str) -> bool:
    """Only 0-9: `str.isdigit()` also accepts "١٢٣" and "²", which `int()` reads differently or refuses."""
    return text.isascii() and text.isdigit()


def date_problem(value: datetime, now: datetime | None = None) -> str | None:
    """Why a date a user gave cannot be scheduled on, or None.

    A value whose UTC form does not exist (year 9999 at -05:00, year 1 at +05:00) or that lies more than
    MAX_YEARS_AHEAD years ahead is refused here, before any arithmetic on it can overflow.
    """
    limit = (now or datetime.now(UTC)) + timedelta(days=366 * MAX_YEARS_AHEAD)
    try:
        utc = value.astimezone(UTC) if value.utcoffset() is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        return "is out of range"
    if utc > limit:
        return f"is more than {MAX_YEARS_AHEAD} years ahead"
    return None


def fields_problem(fields: dict[str, Any]) -> str | None:
    """Why a contact's custom fields (`@name` values) cannot be stored, or None."""
    if len(fields) > MAX_FIELDS:
        return f"has {len(fields)} custom fields; at most {MAX_FIELDS} are allowed"
    for name, value in fields.items():
        if len(name) > MAX_FIELD_NAME:
            return f"field name {name[:20]!r}... is longer than {MAX_FIELD_NAME} characters"
        if not FIELD_NAME.fullmatch(name):
            return f"field name {name!r} may use only letters, digits and _ (texts name fields as @name)"
        if isinstance(value, str) and len(value) > MAX_FIELD_VALUE:
            return f"field {name!r} is longer than {MAX_FIELD_VALUE} characters"
    return None


def fields_count_problem(saved: int, merged: int) -> str | None:
    """Why merging fields into a contact's saved ones is refused: only a change that grows a contact past
    the limit (one saved before the limit existed can still be edited and emptied)."""
    if merged > MAX_FIELDS and merged > saved:
        return f"would leave the contact with {merged} custom fields; at most {MAX_FIELDS} are allowed"
    return None


def provider_url_problem(url: object, *, allow_private: bool) -> str | None:
    """Why a sender's `base_url` cannot be used, or None.

    Workers POST credentials to it, so a tenant must not point it at our own network: loopback,
    private and link-local addresses (and localhost) are refused unless `allow_private` is set.
    Only IP literals can be checked here; workers check the addresses a name resolves to when they
    connect (`workers.egress`).
    """
    if not isinstance(url, str):
        return "base_url must be a string"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises only when read)
    except ValueError:
        return "base_url is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "base_url must be an http(s) URL with a host"
    if not allow_private and _private_host(parts.hostname):
        return f"base_url must not point at a private, loopback or link-local address ({parts.hostname})"
    return None


def _private_host(host: str) -> bool:
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _ip_literal(host)
    return address is not None and _is_private(address)


def private_address(text: str) -> bool:
    """Is this IP address (as a resolver returns it) one workers must not reach? Unreadable counts as yes."""
    address = _ip_literal(text)
    return address is None or _is_private(address)


def _is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address.is_multicast
    )


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        # The resolver also reads "127.1", "2130706433" and "0x7f.0.0.1" as IPv4 addresses.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def json_problem(value: Any) -> tuple[Loc, str] | None:
    """The first value JSON may carry but we cannot store, with where it is, or None.

    NaN and ±Infinity (Python's json reads them, and 1e999 as infinity) have no place in a campaign and
    break JSON columns; a NUL character is refused by PostgreSQL in any text.
    """
    for loc, item in _walk(value, ()):
        if isinstance(item, float) and not math.isfinite(item):
            return loc, "must be a finite number (NaN and Infinity are not JSON numbers)"
        if isinstance(item, str) and "\x00" in item:
            return loc, "must not contain NUL (\\u0000) characters"
    return None


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    # Iterative: a deeply nested body must not hit the recursion limit.
    stack: list[tuple[Loc, Any]] = [(loc, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                yield (*where, str(key)), key
                stack.append(((*where, str(key)), child))
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in reversed(list(enumerate(item))))
        else:
            yield where, item
