# -*- test-case-name: tests.e2e.test_http2,tests.e2e.test_translation_flow -*-
"""
Mapping HTTP messages to and from HTTP/2 header blocks (RFC 9113 8.2-8.3):
pseudo-headers to and from the request line and Host, connection-specific
headers dropped, split Cookie fields joined for HTTP/1.
"""

from __future__ import annotations

import time
from typing import Optional

from interceptor.model.http import Headers, Request, Response, _reason_phrase

__all__ = [
    "CONNECTION_HEADERS",
    "request_from_h2",
    "h2_request_headers",
    "h2_response_headers",
    "http1_headers_for",
    "response_from_h2",
]

CONNECTION_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
"""Connection-specific header names, dropped when crossing to HTTP/2 (RFC 9113 8.2.2)."""



def request_from_h2(
    headers: list[tuple[bytes, bytes]], target: Optional[tuple[str, str, int]]
) -> Request:
    """
    Make a L{Request} from an HTTP/2 header block: pseudo-headers become
    method, scheme, authority and path; the rest stay as headers.  With a
    C{target} (scheme, host, port) the request goes there.
    """
    pseudo: dict[bytes, bytes] = {}
    fields = []
    for name, value in headers:
        if name[:1] == b":":
            pseudo[name] = value
        else:
            fields.append((name, value))
    method = pseudo.get(b":method", b"GET").decode("ascii", "replace")
    scheme = pseudo.get(b":scheme", b"https").decode("ascii", "replace")
    authority = pseudo.get(b":authority", b"").decode("utf-8", "surrogateescape")
    path = pseudo.get(b":path", b"/").decode("utf-8", "surrogateescape")
    if target is not None:
        # The connection decides where the request goes and how: a request
        # that came through a TLS tunnel goes on over TLS, whatever its
        # :scheme says (an addon may still change flow.request.scheme).
        scheme, host, port = target
    else:
        host, _, port_text = authority.rpartition(":")
        if not host or not port_text.isdigit():
            host, port_text = authority, ""
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    return Request(
        method,
        scheme,
        host.strip("[]"),
        port,
        path,
        "HTTP/2.0",
        Headers(fields),
        None,
        authority=authority,
        timestamp_start=time.time(),
    )


def h2_request_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """
    The HTTP/2 header block for a request: pseudo-headers first, then the
    headers without connection-specific ones (and without Host, which
    becomes C{:authority}).
    """
    authority = request.authority or request.headers.get("host") or request.host
    out = [
        (b":method", request.method.encode()),
        (b":scheme", (request.scheme or "https").encode()),
        (b":authority", authority.encode("utf-8", "surrogateescape")),
        (b":path", request.path.encode("utf-8", "surrogateescape")),
    ]
    for name, value in request.headers.fields:
        lower = name.lower()
        if lower in CONNECTION_HEADERS or lower == b"host":
            continue
        if lower == b"te" and value.lower() != b"trailers":
            continue
        out.append((lower, value))
    return out


def h2_response_headers(response: Response) -> list[tuple[bytes, bytes]]:
    """
    The HTTP/2 header block for a response.
    """
    out = [(b":status", str(response.status_code).encode())]
    for name, value in response.headers.fields:
        lower = name.lower()
        if lower not in CONNECTION_HEADERS:
            out.append((lower, value))
    return out


def http1_headers_for(request: Request) -> None:
    """
    Adapt an HTTP/2 request's headers for an HTTP/1.1 upstream: a Host
    header first, split Cookie fields joined.
    """
    headers = request.headers
    if headers.get(b"host") is None:
        headers.insert(0, b"Host", (request.authority or request.host).encode())
    cookies = headers.get_all(b"cookie")
    if len(cookies) > 1:
        headers[b"cookie"] = b"; ".join(cookies)


def response_from_h2(headers: list[tuple[bytes, bytes]]) -> Response:
    """
    Make a L{Response} from an HTTP/2 response header block.
    """
    status = 502
    fields = []
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif name[:1] != b":":
            fields.append((name, value))
    return Response(
        "HTTP/2.0", status, _reason_phrase(status), Headers(fields), None, timestamp_start=time.time()
    )
