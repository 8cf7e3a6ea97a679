# -*- test-case-name: tests.test_http -*-
"""
URL and authority helpers: :func:`default_port`, :func:`hostport`,
:func:`parse_authority`, :func:`parse_url`, :func:`is_host_name`, and the
query-string helpers.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

from interceptor.model.headers import _SE

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


# A DNS host name as it goes on the wire: ASCII labels of letters, digits,
# hyphens (and underscores, which real names carry), 1-63 bytes each, at
# most 253 in all, an optional final dot.
_HOST_NAME = re.compile(rb"(?!.{254})[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?\Z", re.S)


def is_host_name(raw: bytes) -> bool:
    """
    Whether C{raw} (ASCII, IDNA-encoded) can be a DNS host name: no
    empty label (C{a..b}), none over 63 bytes, no space, NUL or other
    character no name has.
    """
    return _HOST_NAME.match(raw) is not None


def default_port(scheme: str) -> int | None:
    """Default port for ``scheme`` (http/ws 80, https/wss 443) or None."""
    return _DEFAULT_PORTS.get(scheme.lower())


def hostport(scheme: str, host: str, port: int, always_port: bool = False) -> str:
    """
    ``host[:port]`` for URLs and Host headers: IPv6 bracketed, the scheme's
    default port omitted unless ``always_port``.
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if not always_port and _DEFAULT_PORTS.get(scheme.lower()) == port:
        return host
    return f"{host}:{port}"


def parse_authority(authority: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 bracketed) into ``(host, port or None)``; never raises."""
    if authority.startswith("["):
        end = authority.find("]")
        if end == -1:
            return authority, None
        rest = authority[end + 1 :]
        port = rest[1:]
        if rest[:1] == ":" and port.isascii() and port.isdigit():
            return authority[1:end], int(port)
        return authority[1:end], None
    host, sep, port = authority.rpartition(":")
    if sep and ":" not in host:
        if port.isascii() and port.isdigit():
            return host, int(port)
        if not port:
            return host, None
    return authority, None


def parse_url(url: str) -> tuple[str, str, int, str]:
    """
    Split an absolute URL into ``(scheme, host, port, path)``.  The host is
    lowercased and unbracketed, the port defaults by scheme, the path includes
    the query and defaults to ``"/"``; the fragment is dropped.  Raises
    ValueError for URLs without scheme/host or with an invalid port.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"Invalid URL {url!r}: {e}") from e
    scheme = parts.scheme
    host = parts.hostname
    if not scheme or not host:
        raise ValueError(f"Invalid URL {url!r}: scheme and host are required")
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise ValueError(
                f"Invalid URL {url!r}: no port and no default port for scheme {scheme!r}"
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port, path


def _qs_decode(qs: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(qs, keep_blank_values=True, errors=_SE)


def _qs_encode(pairs: Iterable[tuple[str, str]], similar_to: str = "") -> str:
    """urlencode ``pairs``; empty values stay bare if ``similar_to`` had bare keys."""
    encoded = urllib.parse.urlencode(list(pairs), False, errors=_SE)
    if encoded and similar_to and any("=" not in p for p in similar_to.split("&")):
        encoded = encoded.replace("=&", "&")
        if encoded.endswith("="):
            encoded = encoded[:-1]
    return encoded


def _split_path(path: str) -> tuple[str, str, str]:
    """Split a request path into ``(path, query, "#fragment" or "")``."""
    base, sep, rest = path.partition("?")
    if sep:
        query, hsep, frag = rest.partition("#")
    else:
        base, hsep, frag = base.partition("#")
        query = ""
    return base, query, (hsep + frag)
