# -*- test-case-name: tests.test_http -*-
"""
:class:`Request`, an HTTP request.
"""

from __future__ import annotations

import email.parser
import email.policy
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping

from interceptor.model.cookies import _cookie_pairs, _cookie_value
from interceptor.model.headers import _SE, Headers, HeadersLike, _b, _make_headers
from interceptor.model.message import Message, ReplacePattern, _compile_replacement
from interceptor.model.multidict import MultiDictView, _pairs
from interceptor.model.url import (
    _qs_decode,
    _qs_encode,
    _split_path,
    default_port,
    hostport,
    parse_authority,
    parse_url,
)


class Request(Message):
    """
    An HTTP request.

    ``host``/``port`` are the connection target (which may differ from the
    Host header, e.g. in transparent mode); ``authority`` is the
    absolute-form/``:authority`` target ("" for origin-form HTTP/1 requests).
    """

    __slots__ = ("method", "scheme", "_host", "_port", "path", "authority", "is_replay")

    method: str
    """Request method, e.g. ``"GET"``."""
    scheme: str
    """``"http"`` or ``"https"`` (lowercase)."""
    path: str
    """Request target path including the query string, e.g. ``"/a?b=c"``."""
    authority: str
    """Authority from an absolute-form target or HTTP/2 ``:authority``; "" if none."""
    is_replay: bool
    """Whether client replay sent this request again (mitmproxy 4-6's
    ``request.is_replay``; ``flow.is_replay == "request"`` says the same)."""

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        path: str,
        http_version: str,
        headers: Headers,
        content: bytes | None = b"",
        authority: str = "",
        timestamp_start: float | None = None,
        timestamp_end: float | None = None,
    ) -> None:
        """Store the fields as given (``headers`` by reference, ``content`` as the raw body)."""
        Message.__init__(self, http_version, headers, content, timestamp_start, timestamp_end)
        self.method = method
        self.scheme = scheme
        self._host = host
        self._port = port
        self.path = path
        self.authority = authority
        self.is_replay = False

    def __repr__(self) -> str:
        """``Request(GET example.com:443/path)``."""
        hp = (
            hostport(self.scheme, self._host, self._port, True)
            if self._host and self._port
            else ""
        )
        return f"Request({self.method} {hp}{self.path})"

    @classmethod
    def make(
        cls,
        method: str,
        url: str,
        content: bytes | str = b"",
        headers: HeadersLike = None,
    ) -> Request:
        """
        Build an HTTP/1.1 request for ``url``.  ``headers`` may be a Headers
        (used as-is), a dict or a list of pairs (str or bytes).  str content is
        encoded with the Content-Type charset (default UTF-8); a non-empty body
        gets a Content-Length.  No Host header is added (as in mitmproxy); an
        existing one is updated to match ``url``.
        """
        t = time.time()
        req = cls(method, "", "", 0, "/", "HTTP/1.1", _make_headers(headers), b"", "", t, t)
        req.url = url
        if isinstance(content, bytes):
            req.content = content
        elif isinstance(content, str):
            req.text = content
        else:
            raise TypeError(f"content must be bytes or str, not {type(content).__name__}")
        return req

    # -- target -----------------------------------------------------------------

    def _update_host_and_authority(self) -> None:
        hp = hostport(self.scheme, self._host, self._port, self.method == "CONNECT")
        h = self.headers
        if b"host" in h:
            h[b"host"] = _b(hp)
        if self.authority:
            self.authority = hp

    @property
    def host(self) -> str:
        """
        Target host (no brackets for IPv6).  Setting it also updates the Host
        header (if present) and ``authority`` (if non-empty), keeping a
        non-default port.
        """
        return self._host

    @host.setter
    def host(self, value: str | bytes) -> None:
        if isinstance(value, bytes):
            value = value.decode("idna")
        self._host = value
        self._update_host_and_authority()

    @property
    def port(self) -> int:
        """
        Target port.  Setting it also updates the Host header (if present)
        and ``authority`` (if non-empty).
        """
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        if not isinstance(value, int) or not 0 <= value <= 65535:
            raise ValueError(f"Invalid port: {value!r}")
        self._port = value
        self._update_host_and_authority()

    @property
    def first_line_format(self) -> str:
        """``"authority"`` (CONNECT), ``"absolute"`` (authority set) or ``"relative"``."""
        if self.method == "CONNECT":
            return "authority"
        if self.authority:
            return "absolute"
        return "relative"

    @property
    def url(self) -> str:
        """
        ``scheme://host[:port]path`` (default port omitted, IPv6 bracketed;
        ``host:port`` for CONNECT).  Setting it re-targets scheme, host, port
        and path, updating the Host header/authority as the host setter does.
        """
        if self.method == "CONNECT":
            return hostport(self.scheme, self._host, self._port, True)
        return f"{self.scheme}://{hostport(self.scheme, self._host, self._port)}{self.path}"

    @url.setter
    def url(self, value: str) -> None:
        self.scheme, self._host, self._port, self.path = parse_url(value)
        self._update_host_and_authority()

    @property
    def host_header(self) -> str | None:
        """
        The Host header (for HTTP/2 and 3: ``authority``, falling back to
        Host); None if absent.  Setting None removes it.
        """
        if self.is_http2 or self.is_http3:
            return self.authority or self.headers.get("host")
        return self.headers.get("host")

    @host_header.setter
    def host_header(self, value: str | None) -> None:
        h2 = self.is_http2 or self.is_http3
        if value is None:
            if h2:
                self.authority = ""
            if b"host" in self.headers:
                del self.headers[b"host"]
        else:
            if h2:
                self.authority = value
            if not h2 or b"host" in self.headers:
                self.headers[b"host"] = _b(value)

    @property
    def pretty_host(self) -> str:
        """
        The host from the Host header (or HTTP/2 authority) if present, else
        ``host``.  Client-controlled: do not trust it for security decisions.
        """
        hh = self.host_header
        if hh:
            return parse_authority(hh)[0]
        return self._host

    @property
    def pretty_url(self) -> str:
        """Like ``url`` but built from ``pretty_host`` (and the Host header's port)."""
        if self.method == "CONNECT":
            return self.authority or self.url
        hh = self.host_header
        if not hh:
            return self.url
        host, port = parse_authority(hh)
        if port is None:
            port = default_port(self.scheme) or self._port
        return f"{self.scheme}://{hostport(self.scheme, host, port)}{self.path}"

    # -- query / path -------------------------------------------------------------

    def replace(self, pattern: ReplacePattern, repl: str | bytes, flags: int = 0, count: int = 0) -> int:
        """
        :meth:`Message.replace` (body and headers) and the same in the path
        (query string included), as mitmproxy 2.x's ``Request.replace``;
        ``count`` limits each of the three separately.

        :return: How many replacements were made.
        """
        made = Message.replace(self, pattern, repl, flags, count)
        compiled, replacement = _compile_replacement(pattern, repl, flags)
        path, in_path = compiled.subn(replacement, self.path.encode("utf-8", _SE), count=count)
        if in_path:
            self.path = path.decode("utf-8", _SE)
        return made + in_path


    def _get_query(self) -> list[tuple[str, str]]:
        query = _split_path(self.path)[1]
        return _qs_decode(query) if query else []

    def _set_query(self, pairs: list[tuple[str, str]]) -> None:
        base, old, frag = _split_path(self.path)
        query = _qs_encode(pairs, old)
        self.path = f"{base}?{query}{frag}" if query else base + frag

    @property
    def query(self) -> MultiDictView[str, str]:
        """The query string as a MultiDictView; modifications rewrite ``path``."""
        return MultiDictView(self._get_query, self._set_query)

    @query.setter
    def query(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_query(_pairs(value))

    @property
    def path_components(self) -> tuple[str, ...]:
        """The non-empty, percent-decoded segments of the path (without query).  Settable."""
        base = _split_path(self.path)[0]
        return tuple(urllib.parse.unquote(c, errors=_SE) for c in base.split("/") if c)

    @path_components.setter
    def path_components(self, components: Iterable[str]) -> None:
        _, query, frag = _split_path(self.path)
        path = "/" + "/".join(urllib.parse.quote(c, safe="", errors=_SE) for c in components)
        self.path = f"{path}?{query}{frag}" if query else path + frag

    # -- cookies ----------------------------------------------------------------

    def _get_cookies(self) -> list[tuple[str, str]]:
        out = []
        for line in self.headers.get_all("cookie"):
            for name, value in _cookie_pairs(line):
                if name or value:
                    out.append((name, value or ""))
        return out

    def _set_cookies(self, pairs: list[tuple[str, str]]) -> None:
        if pairs:
            self.headers["cookie"] = "; ".join(
                f"{k}={_cookie_value(v)}" if k else _cookie_value(v) for k, v in pairs
            )
        elif b"cookie" in self.headers:
            del self.headers[b"cookie"]

    @property
    def cookies(self) -> MultiDictView[str, str]:
        """The Cookie header(s) as a MultiDictView; changes rewrite one Cookie header."""
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_cookies(_pairs(value))

    # -- forms ------------------------------------------------------------------

    def _is_urlencoded(self) -> bool:
        ct = self.headers.get(b"content-type")
        return ct is not None and ct.strip().lower().startswith(
            b"application/x-www-form-urlencoded"
        )

    def _get_urlencoded_form(self) -> list[tuple[str, str]]:
        if not self._is_urlencoded():
            return []
        text = self.get_text(strict=False)
        return _qs_decode(text) if text else []

    def _set_urlencoded_form(self, pairs: list[tuple[str, str]]) -> None:
        old = ""
        if self._is_urlencoded():
            old = self.get_text(strict=False) or ""
        else:
            self.headers["content-type"] = "application/x-www-form-urlencoded"
        self.set_content(_qs_encode(pairs, old).encode("ascii"))

    def _get_multipart_form(self) -> list[tuple[bytes, bytes]]:
        content_type = self.headers.get(b"content-type") or b""
        if not content_type.lower().startswith(b"multipart/form-data"):
            return []
        content = self.get_content(strict=False) or b""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type + b"\r\n\r\n" + content
        )
        if not message.is_multipart():
            return []
        pairs = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is not None:
                # (decode=True gives the part's bytes, or None for a nested multipart.)
                payload = part.get_payload(decode=True)
                pairs.append(
                    (str(name).encode("utf-8", _SE), payload if isinstance(payload, bytes) else b"")
                )
        return pairs

    def _set_multipart_form(self, pairs: list[tuple[bytes, bytes]]) -> None:
        boundary = uuid.uuid4().hex
        body = b"".join(
            b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
            % (boundary.encode(), _b(name).replace(b'"', b"%22"), _b(value))
            for name, value in pairs
        ) + b"--%s--\r\n" % boundary.encode()
        self.headers["content-type"] = f"multipart/form-data; boundary={boundary}"
        self.set_content(body)

    @property
    def multipart_form(self) -> MultiDictView[bytes, bytes]:
        """
        The multipart/form-data body as a MultiDictView of field name to
        value, bytes (as in mitmproxy; empty for other content types; file
        parts give their content).  Modifications rewrite the body (fields
        only) and set that Content-Type with a new boundary.
        """
        return MultiDictView(self._get_multipart_form, self._set_multipart_form)

    @multipart_form.setter
    def multipart_form(self, value: Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes]) -> None:
        self._set_multipart_form(_pairs(value))

    @property
    def urlencoded_form(self) -> MultiDictView[str, str]:
        """
        The application/x-www-form-urlencoded body as a MultiDictView (empty
        for other content types).  Modifications rewrite the body and set
        that Content-Type.
        """
        return MultiDictView(self._get_urlencoded_form, self._set_urlencoded_form)

    @urlencoded_form.setter
    def urlencoded_form(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_urlencoded_form(_pairs(value))
