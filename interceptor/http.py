"""
The stable public import path of the HTTP model (Headers, Request, Response,
...); the code lives in L{interceptor.model.http}, which this module
re-exports, with the flow the HTTP events receive::

    from interceptor import http

    def request(flow: http.HTTPFlow) -> None:
        flow.response = http.Response.make(200, b"hello")

C{HTTPRequest} and C{HTTPResponse} are mitmproxy 2.x's names for
L{Request} and L{Response} (the same classes).
"""

from interceptor.model.flow import HTTPFlow
from interceptor.model.http import *  # noqa: F401,F403
from interceptor.model.http import __all__ as _model_names
from interceptor.model.http import Request, Response
from interceptor.model.http import (  # noqa: F401
    _b,
    _charset_of,
    _cookie_pairs,
    _cookie_value,
    _format_set_cookie,
    _make_headers,
    _pairs,
    _parse_set_cookie,
    _qs_decode,
    _qs_encode,
    _reason_phrase,
    _s,
    _split_path,
)

HTTPRequest = Request
"""mitmproxy 2.x's name for L{Request}."""

HTTPResponse = Response
"""mitmproxy 2.x's name for L{Response}."""

__all__ = [*_model_names, "HTTPFlow", "HTTPRequest", "HTTPResponse"]
