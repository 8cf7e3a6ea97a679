"""
The stable public import path of the HTTP model (Headers, Request, Response,
...); the code lives in L{interceptor.model.http}, which this module
re-exports.
"""

from interceptor.model.http import *  # noqa: F401,F403
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
