# -*- test-case-name: tests.test_http -*-
"""
:class:`Response`, an HTTP response.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping

from interceptor.model.cookies import CookieAttrs, _format_set_cookie, _parse_set_cookie
from interceptor.model.headers import Headers, HeadersLike, _make_headers
from interceptor.model.validate import status_problem
from interceptor.model.message import Message, _reason_phrase
from interceptor.model.multidict import MultiDictView, _pairs


class Response(Message):
    """An HTTP response."""

    __slots__ = ("status_code", "reason")

    status_code: int
    """Status code, e.g. 200."""
    reason: str
    """Reason phrase, e.g. ``"OK"`` ("" for HTTP/2)."""

    def __init__(
        self,
        http_version: str,
        status_code: int,
        reason: str,
        headers: Headers,
        content: bytes | None,
        timestamp_start: float | None = None,
        timestamp_end: float | None = None,
    ) -> None:
        """Store the fields as given (``headers`` by reference, ``content`` as the raw body)."""
        Message.__init__(self, http_version, headers, content, timestamp_start, timestamp_end)
        self.status_code = status_code
        self.reason = reason

    def __repr__(self) -> str:
        """``Response(200 OK, text/html, 1234 bytes)``."""
        ct = self.headers.get("content-type") or "unknown content type"
        raw = self._raw_content
        size = "no content" if raw is None else f"{len(raw)} bytes"
        return f"Response({self.status_code} {self.reason}, {ct}, {size})"

    @classmethod
    def make(
        cls,
        status_code: int = 200,
        content: bytes | str = b"",
        headers: HeadersLike = None,
    ) -> Response:
        """
        Build an HTTP/1.1 response.  The reason comes from
        :class:`http.HTTPStatus` ("" if unknown); ``headers`` may be a
        Headers (used as-is), a dict or a list of pairs; str content is
        encoded with the Content-Type charset (default UTF-8) and bytes are
        content-encoded if a Content-Encoding header is given.  Content-Length
        is always set to the body length (unless Transfer-Encoding is given);
        both timestamps are set to now.

        :raises ValueError: ``status_code`` is not an integer from 100 to 999.
        """
        problem = status_problem(status_code)
        if problem is not None:
            raise ValueError(f"Response.make: {problem}")
        status_code = int(status_code)  # (an HTTPStatus is written as its number)
        t = time.time()
        resp = cls(
            "HTTP/1.1", status_code, _reason_phrase(status_code), _make_headers(headers), b"", t, t
        )
        if isinstance(content, bytes):
            resp.content = content
        elif isinstance(content, str):
            resp.text = content
        else:
            raise TypeError(f"content must be bytes or str, not {type(content).__name__}")
        if b"transfer-encoding" not in resp.headers:
            resp.headers[b"content-length"] = b"%d" % len(resp._raw_content or b"")
        return resp

    def refresh(self, now: float | None = None) -> None:
        """
        Make a recorded response look fresh when it is replayed (as
        mitmproxy's ``Response.refresh``): the ``Date``, ``Expires`` and
        ``Last-Modified`` headers and the ``Expires`` of each Set-Cookie
        move by as much time as has passed since ``timestamp_start``.  Dates
        that do not parse are left as they are (a cookie's is dropped).
        """
        if self.timestamp_start is None:
            return
        delta = (time.time() if now is None else now) - self.timestamp_start
        for name in ("date", "expires", "last-modified"):
            value = self.headers.get(name)
            if value is not None:
                moved = _moved_date(value, delta)
                if moved is not None:
                    self.headers[name] = moved
        lines = self.headers.get_all("set-cookie")
        if lines:
            self.headers.set_all("set-cookie", [_refreshed_cookie(line, delta) for line in lines])

    def _get_cookies(self) -> list[tuple[str, tuple[str, CookieAttrs]]]:
        return [_parse_set_cookie(line) for line in self.headers.get_all("set-cookie")]

    def _set_cookies(self, pairs: list[tuple[str, tuple[str, CookieAttrs]]]) -> None:
        self.headers.set_all(
            "set-cookie", [_format_set_cookie(name, v[0], v[1]) for name, v in pairs]
        )

    @property
    def cookies(self) -> MultiDictView[str, tuple[str, CookieAttrs]]:
        """
        The Set-Cookie headers as a MultiDictView mapping cookie name to
        ``(value, attrs)``, attrs being a list of ``(name, value-or-None)``
        pairs.  Modifications rewrite the Set-Cookie headers.
        """
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(
        self,
        value: Iterable[tuple[str, tuple[str, CookieAttrs]]]
        | Mapping[str, tuple[str, CookieAttrs]],
    ) -> None:
        self._set_cookies(_pairs(value))


def _moved_date(value: str, delta: float) -> str | None:
    """
    An HTTP date ``delta`` seconds later, or None if ``value`` is no date.
    """
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return email.utils.formatdate(email.utils.mktime_tz(parsed) + delta, usegmt=True)
    except (OverflowError, OSError, ValueError):
        return None


def _refreshed_cookie(line: str, delta: float) -> str:
    """
    A Set-Cookie line whose Expires is ``delta`` seconds later.
    """
    name, (value, attrs) = _parse_set_cookie(line)
    if "expires" not in attrs:
        return line
    moved = _moved_date(attrs["expires"] or "", delta)
    if moved is None:
        del attrs["expires"]
    else:
        attrs["expires"] = moved
    return _format_set_cookie(name, value, attrs)
