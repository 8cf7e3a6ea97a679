"""
Whether a message can be written as it is, and if not, which field is wrong.

Addons may put anything in a flow: a query parameter copied into a header
(C{"a\\r\\nX-Injected: 1"}), a status code of C{"abc"}, a method with a
space.  Written out, such a field splits the request or the response in
two, or breaks the peer's parser.  The proxy checks each message before it
is written and fails the flow naming the field instead:

    problem = request_problem(flow.request)
    if problem is not None:
        ...  # problem: 'header value "x-user": CR, LF or NUL'

The checks follow RFC 9110: a method and a field name are tokens; a field
value, the request target, the host and the reason phrase hold no CR, LF
or NUL (the target and the host no space or other control either); a
status code is an integer from 100 to 999.  Fields as a parser read them
always pass: only an addon's changes can fail.
"""

from __future__ import annotations

import re
from typing import Any, Optional

__all__ = ["fields_problem", "request_problem", "response_problem", "status_problem"]

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_NAMES = re.compile(_TOKEN + rb"(?:\n" + _TOKEN + rb")*\Z")
_ONE_TOKEN = re.compile(_TOKEN + rb"\Z")
_CRLF_NUL = re.compile(rb"[\x00\r\n]")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_LINE_BREAK = re.compile(r"[\x00\r\n]")
_COMMON_METHODS = frozenset(("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"))


def fields_problem(fields: list[tuple[bytes, bytes]], kind: str = "header") -> Optional[str]:
    """
    What is wrong with a list of C{(name, value)} fields, or None: a name
    that is no token, or a value holding CR, LF or NUL.  C{kind} names
    them in the answer (C{"header"}, C{"trailer"}).
    """
    if not fields:
        return None
    # (One pass over all names and one over all values: this runs for every
    # message the proxy writes.  Only a failure looks at each field.)
    names, values = zip(*fields)
    if _NAMES.match(b"\n".join(names)) and not _CRLF_NUL.search(b"".join(values)):
        return None
    for name, value in fields:
        if not _ONE_TOKEN.match(name):
            return f"{kind} name {name[:80]!r}: not a token"
        if _CRLF_NUL.search(value):
            return f"{kind} value of {name[:80].decode('latin-1')!r}: CR, LF or NUL"
    return None


def request_problem(request: Any) -> Optional[str]:
    """
    What is wrong with C{request} (an L{interceptor.model.request.Request})
    for writing it out, or None.
    """
    method = request.method
    if not isinstance(method, str) or (
        method not in _COMMON_METHODS and not _ONE_TOKEN.match(method.encode("utf-8", "replace"))
    ):
        return f"method {method!r}: not a token"
    path = request.path
    if _CONTROL_OR_SPACE.search(path):
        return f"request target {path[:80]!r}: space or control character"
    host = request.host
    if _CONTROL_OR_SPACE.search(host):
        return f"host {host[:80]!r}: space or control character"
    return fields_problem(request.headers.fields) or _trailers_problem(request)


def status_problem(status: object) -> Optional[str]:
    """
    What is wrong with C{status} as a status code (an integer from 100 to
    999; a bool is not one), or None.
    """
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        return f"status code {status!r}: not an integer from 100 to 999"
    return None


def response_problem(response: Any) -> Optional[str]:
    """
    What is wrong with C{response} (an L{interceptor.model.response.Response})
    for writing it out, or None.
    """
    problem = status_problem(response.status_code)
    if problem is not None:
        return problem
    reason = response.reason
    if not isinstance(reason, str) or _LINE_BREAK.search(reason):
        return f"reason {reason!r}: CR, LF or NUL"
    return fields_problem(response.headers.fields) or _trailers_problem(response)


def _trailers_problem(message: Any) -> Optional[str]:
    trailers = message.trailers
    if trailers is None:
        return None
    return fields_problem(trailers.fields, "trailer")
