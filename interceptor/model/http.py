# -*- test-case-name: tests.test_http -*-
"""
The HTTP flow model: :class:`Headers`, :class:`Request` and :class:`Response`.

This module gathers what the model's modules define (``headers``,
``multidict``, ``url``, ``cookies``, ``message``, ``request``,
``response``); ``interceptor.http`` re-exports it as the public import path.

The names follow mitmproxy's ``mitmproxy.http`` module so addon authors feel at
home.  The objects sit on the proxy's hot path, so constructors store what the
wire parser hands over as-is (the header list is kept by reference, bodies are
not copied) and everything derived (case-insensitive header index, decoded
body, parsed query/cookies) is computed lazily on first use.

Conventions:

* Header names and values are stored as ``bytes``.  Accessing a header with a
  ``str`` key returns ``str``, with a ``bytes`` key returns ``bytes``.  The
  str/bytes conversion is UTF-8 with ``surrogateescape``, which round-trips
  arbitrary bytes.
* ``raw_content`` is the body as on the wire (after transfer-decoding, still
  content-encoded); ``content`` is the body with Content-Encoding removed.
  Assigning ``content`` re-encodes transparently and fixes Content-Length.
* Headers added by this module use lowercase names (HTTP/2-compatible, as in
  mitmproxy); existing headers keep the case they arrived with.

Usage::

    >>> from interceptor.http import Headers, Request, Response
    >>> req = Request.make("GET", "https://example.com/search?q=cats",
    ...                    headers={"Host": "example.com"})
    >>> req.query["q"]
    'cats'
    >>> req.query["q"] = "dogs"
    >>> req.path
    '/search?q=dogs'
    >>> req.url = "http://example.org:8080/"
    >>> req.headers["Host"]
    'example.org:8080'
    >>> resp = Response.make(200, "hello", {"Content-Type": "text/plain"})
    >>> resp.headers["content-length"], resp.text
    ('5', 'hello')
"""

from __future__ import annotations

from interceptor.model.cookies import CookieAttrs
from interceptor.model.headers import Headers, HeadersLike
from interceptor.model.message import Message, StreamSetting
from interceptor.model.multidict import MultiDictView
from interceptor.model.request import Request
from interceptor.model.response import Response
from interceptor.model.url import default_port, hostport, parse_authority, parse_url

# Private helpers the layers and tests import from here, as they did from
# the one-module interceptor.http.
from interceptor.model.cookies import (  # noqa: F401
    _cookie_pairs,
    _cookie_value,
    _format_set_cookie,
    _parse_set_cookie,
)
from interceptor.model.headers import _b, _make_headers, _s  # noqa: F401
from interceptor.model.message import _charset_of, _reason_phrase  # noqa: F401
from interceptor.model.multidict import _pairs  # noqa: F401
from interceptor.model.url import _qs_decode, _qs_encode, _split_path  # noqa: F401

__all__ = [
    "Headers",
    "MultiDictView",
    "Message",
    "Request",
    "Response",
    "HeadersLike",
    "StreamSetting",
    "CookieAttrs",
    "default_port",
    "hostport",
    "parse_authority",
    "parse_url",
]
