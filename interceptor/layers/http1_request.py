# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_http1_faults -*-
"""
An HTTP/1 request head made into a L{Request} (L{make_request}): the
request-target forms the proxy takes (absolute-form, as clients configured
with a proxy send them; origin-form toward a layer's known server; reverse
mode's rewrite of either), and the errors that refuse a request
(L{BadRequest}, L{HeadersTooLarge}).
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Optional

import httptools

from interceptor.model.http import Headers, Request, default_port
from interceptor.model.url import is_host_name
from interceptor.transport.modes import ProxyMode, proxy_authorization

if TYPE_CHECKING:
    from interceptor.core.options import Options

__all__ = ["BadRequest", "HeadersTooLarge", "check_transfer_encoding", "make_request"]


class BadRequest(Exception):
    """
    Raised from a parser callback: the request cannot be served.

    @ivar status: The status code to answer with.
    @ivar reason: Its reason phrase.
    """

    status = 400
    reason = "Bad Request"


class HeadersTooLarge(BadRequest):
    """
    The request head is larger than the option C{max_header_size}.
    """

    status = 431
    reason = "Request Header Fields Too Large"


def check_transfer_encoding(values: list[bytes], version: str) -> None:
    """
    Refuse a request's C{Transfer-Encoding} fields (C{values}, in order)
    unless they are one C{chunked} on an HTTP/1.1 request, as mitmdump
    does: C{identity, chunked}, two fields, or chunked in HTTP/1.0 are
    read one way by the proxy and maybe another by the server behind it.

    @raise BadRequest: Any other form.
    """
    if version != "1.1":
        raise BadRequest(f"Transfer-Encoding in an HTTP/{version} request")
    if len(values) > 1:
        raise BadRequest(f"{len(values)} Transfer-Encoding fields (one 'chunked' is accepted)")
    if values[0].strip().lower() != b"chunked":
        raise BadRequest(
            f"Transfer-Encoding {values[0][:100]!r} (only 'chunked' is accepted)"
        )


def make_request(
    method: str,
    version: str,
    url: bytes,
    fields: list[tuple[bytes, bytes]],
    target: Optional[tuple[str, str, int]],
    mode: Optional[ProxyMode],
    options: Options,
) -> Optional[Request]:
    """
    The L{Request} for a request head: C{method}, HTTP C{version} ("1.1"),
    request-target C{url} and header C{fields} (C{Proxy-Connection} left
    out), received by a layer whose server is C{target} (C{(scheme, host,
    port)}, or None in regular and upstream mode) in proxy C{mode}.

    Regular and upstream mode take absolute-form targets; a layer with a
    target takes origin-form ones too, and in reverse mode rewrites an
    absolute-form target to its own server.  In upstream mode a plain
    HTTP request carries the upstream proxy's C{Proxy-Authorization}
    (option C{upstream_auth}).

    @return: The request, or None for CONNECT (handled as an upgrade).
    @raise BadRequest: The head cannot be served.
    """
    if method == "CONNECT":
        return None
    if version not in ("1.1", "1.0"):
        raise BadRequest(f"unsupported HTTP version {version!r} (expected HTTP/1.0 or HTTP/1.1)")
    if target is not None and url.startswith((b"/", b"*")):
        return _origin_form_request(target, method, version, url, fields, mode, options)
    absolute = url[:8].lower().startswith((b"http://", b"https://"))
    if target is not None and absolute:
        # The connection decides where the request goes, whatever the URL
        # names: reverse mode's target, or a tunnel's server (a request that
        # came through a TLS tunnel goes on over TLS, never in cleartext).
        origin_path = b"/" + url.split(b"://", 1)[1].partition(b"/")[2]
        return _origin_form_request(target, method, version, origin_path, fields, mode, options)
    if not absolute:
        raise BadRequest(
            "regular proxy mode expects absolute-form requests "
            f"(e.g. GET http://example.org/ HTTP/1.1), not {url[:200]!r}"
        )
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise BadRequest(f"invalid request URL {url[:200]!r}") from None
    scheme = parsed.schema.decode("ascii").lower()
    host = _host(parsed.host or b"", url)
    port = parsed.port or default_port(scheme)
    if port is None:
        # (Not reached: an absolute-form URL here is http or https.)
        raise BadRequest(f"unsupported scheme in request URL {url[:200]!r}")
    path = (parsed.path or b"/").decode("utf-8", "surrogateescape")
    if parsed.query:
        path += "?" + parsed.query.decode("utf-8", "surrogateescape")
    authority = url[len(parsed.schema) + 3 :].split(b"/", 1)[0].split(b"?", 1)[0]
    now = time.time()
    if mode is not None and mode.kind == "upstream" and scheme == "http":
        auth = proxy_authorization(options.upstream_auth)
        # (With proxyauth, the client's own is checked first: the proxyauth addon swaps them.)
        if auth is not None and not ("proxyauth" in options and options.proxyauth):
            fields = [f for f in fields if f[0].lower() != b"proxy-authorization"]
            fields.append((b"Proxy-Authorization", auth))
    request = Request(
        method,
        scheme,
        host,
        port,
        path,
        "HTTP/" + version,
        Headers(fields),
        None,
        authority=authority.decode("utf-8", "surrogateescape"),
        timestamp_start=now,
    )
    return request


def _host(raw: bytes, url: bytes) -> str:
    # The host of an absolute-form target, if it can be one: a name
    # (IDNA-decoded) or an IP address literal.  Anything else would fail
    # only when connecting, as a 502 (or, before, a hang).
    if not raw:
        raise BadRequest(f"no host in request URL {url[:200]!r}")
    if b":" in raw:
        try:
            return str(ipaddress.IPv6Address(raw.decode("ascii")))
        except (UnicodeError, ValueError):
            raise BadRequest(f"invalid host {raw[:100]!r} in request URL") from None
    try:
        if raw.isascii():
            encoded = raw
            host = raw.decode("ascii") if b"xn--" not in raw.lower() else raw.decode("idna")
        else:
            host = raw.decode("utf-8")
            encoded = host.encode("idna")
    except UnicodeError:
        raise BadRequest(f"invalid host {raw[:100]!r} in request URL") from None
    if not is_host_name(encoded):
        raise BadRequest(f"invalid host {raw[:100]!r} in request URL")
    return host


def _origin_form_request(
    target: tuple[str, str, int],
    method: str,
    version: str,
    url: bytes,
    fields: list[tuple[bytes, bytes]],
    mode: Optional[ProxyMode],
    options: Options,
) -> Request:
    # A request to the layer's own server; reverse mode names that server
    # in Host (unless keep_host_header).
    scheme, host, port = target
    if mode is not None and mode.kind == "reverse" and not options.keep_host_header:
        fields = [f for f in fields if f[0].lower() != b"host"]
        fields.insert(0, (b"Host", mode.authority.encode("idna")))
    return Request(
        method,
        scheme,
        host,
        port,
        url.decode("utf-8", "surrogateescape"),
        "HTTP/" + version,
        Headers(fields),
        None,
        timestamp_start=time.time(),
    )
