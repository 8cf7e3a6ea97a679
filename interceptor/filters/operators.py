# -*- test-case-name: tests.test_flowfilter -*-
"""
The C{~x} operators of the filter language, one class each, matching as
mitmproxy 12's do: regular expressions are searched (not anchored) and
ignore case; header and body operators search bytes, the others text.

Only the body operators (C{~b}, C{~bq}, C{~bs}) read a message's content, so
no other filter ever decodes a body.  There are no UDP or DNS flows here, so
C{~udp} and C{~dns} match nothing.
"""

from __future__ import annotations

import re
from typing import Callable, ClassVar, Optional, Sequence

from interceptor.filters.lexicon import quote
from interceptor.filters.nodes import Filter
from interceptor.model.flow import Flow, HTTPFlow
from interceptor.model.message import Message
from interceptor.model.tcp import TCPFlow, TCPMessage
from interceptor.model.websocket import WebSocketMessage

__all__ = ["Operator", "RegexOperator", "StatusCode", "OPERATORS"]


class Operator(Filter):
    """
    An operator without an argument (C{~q}, C{~e}, ...).

    @cvar code: Its name after the C{~}.
    @cvar help: One line saying what it matches.
    """

    __slots__ = ()
    code: ClassVar[str] = ""
    help: ClassVar[str] = ""

    def key(self) -> tuple[object, ...]:
        return ()

    def __str__(self) -> str:
        return f"~{self.code}"


class RegexOperator(Operator):
    """
    An operator whose argument is a regular expression.

    @ivar expr: The regular expression as written (unquoted).
    @cvar flags: C{re} flags beyond C{IGNORECASE}, which all have.
    """

    __slots__ = ("expr",)
    flags: ClassVar[int] = 0

    def __init__(self, expr: str) -> None:
        """
        @raise ValueError: C{expr} is not a regular expression (an
            C{re.error} is a ValueError).
        """
        super().__init__()
        self.expr = expr

    def key(self) -> tuple[object, ...]:
        return (self.expr,)

    def __str__(self) -> str:
        return f"~{self.code} {quote(self.expr)}"


class _TextRegex(RegexOperator):
    """
    A regular expression searched in text.
    """

    __slots__ = ("_search",)

    def __init__(self, expr: str) -> None:
        super().__init__(expr)
        self._search: Callable[[str], Optional[re.Match[str]]] = re.compile(
            expr, self.flags | re.IGNORECASE).search


class _BytesRegex(RegexOperator):
    """
    A regular expression searched in bytes (its text encoded as UTF-8).
    """

    __slots__ = ("_search",)

    def __init__(self, expr: str) -> None:
        super().__init__(expr)
        try:
            pattern = expr.encode()
        except UnicodeEncodeError as e:
            raise ValueError(f"cannot encode it as UTF-8 ({e.reason})") from None
        self._search: Callable[[bytes], Optional[re.Match[bytes]]] = re.compile(
            pattern, self.flags | re.IGNORECASE).search


class StatusCode(Operator):
    """
    C{~c 404}: the response has this status code.

    @ivar num: The status code.
    """

    __slots__ = ("num",)
    code = "c"
    help = "HTTP response code"

    def __init__(self, num: int) -> None:
        super().__init__()
        self.num = num

    def key(self) -> tuple[object, ...]:
        return (self.num,)

    def __str__(self) -> str:
        return f"~c {self.num}"

    def __call__(self, flow: Flow) -> bool:
        if not isinstance(flow, HTTPFlow):
            return False
        response = flow.response
        return response is not None and response.status_code == self.num


# -- flags and kinds ---------------------------------------------------------


class All(Operator):
    __slots__ = ()
    code = "all"
    help = "Match all flows"

    def __call__(self, flow: Flow) -> bool:
        return True


class HasError(Operator):
    __slots__ = ()
    code = "e"
    help = "Match error"

    def __call__(self, flow: Flow) -> bool:
        return flow.error is not None


class Marked(Operator):
    __slots__ = ()
    code = "marked"
    help = "Match marked flows"

    def __call__(self, flow: Flow) -> bool:
        return bool(flow.marked)


class IsHTTP(Operator):
    __slots__ = ()
    code = "http"
    help = "Match HTTP flows"

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, HTTPFlow)


class IsWebSocket(Operator):
    __slots__ = ()
    code = "websocket"
    help = "Match WebSocket flows"

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, HTTPFlow) and flow.websocket is not None


class IsTCP(Operator):
    __slots__ = ()
    code = "tcp"
    help = "Match TCP flows"

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, TCPFlow)


class IsUDP(Operator):
    __slots__ = ()
    code = "udp"
    help = "Match UDP flows (there are none here)"

    def __call__(self, flow: Flow) -> bool:
        return False


class IsDNS(Operator):
    __slots__ = ()
    code = "dns"
    help = "Match DNS flows (there are none here)"

    def __call__(self, flow: Flow) -> bool:
        return False


class NoResponse(Operator):
    __slots__ = ()
    code = "q"
    help = "Match request with no response"

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, HTTPFlow) and flow.response is None


class HasResponse(Operator):
    __slots__ = ()
    code = "s"
    help = "Match response"

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, HTTPFlow) and flow.response is not None


class Replayed(Operator):
    __slots__ = ()
    code = "replay"
    help = "Match replayed flows"

    def __call__(self, flow: Flow) -> bool:
        return flow.is_replay is not None


class ReplayedRequest(Operator):
    __slots__ = ()
    code = "replayq"
    help = "Match replayed client request"

    def __call__(self, flow: Flow) -> bool:
        return flow.is_replay == "request"


class ReplayedResponse(Operator):
    __slots__ = ()
    code = "replays"
    help = "Match replayed server response"

    def __call__(self, flow: Flow) -> bool:
        return flow.is_replay == "response"


# mitmproxy's asset types (searched as it does, case and all), as one alternation.
_ASSET_TYPE = re.compile(
    b"text/javascript|application/x-javascript|application/javascript|text/css"
    b"|image/.*|font/.*|application/font.*"
).search


def _has_content_type(search: Callable[[bytes], object], message: Message) -> bool:
    """
    Whether some Content-Type field of C{message} matches (every field, as
    mitmproxy looks at each).
    """
    for name, value in message.headers.fields:
        if name.lower() == b"content-type" and search(value):
            return True
    return False


class Asset(Operator):
    __slots__ = ()
    code = "a"
    help = "Match asset in response: CSS, JavaScript, images, fonts."

    def __call__(self, flow: Flow) -> bool:
        if not isinstance(flow, HTTPFlow) or flow.response is None:
            return False
        return _has_content_type(_ASSET_TYPE, flow.response)


# -- the request ---------------------------------------------------------------


class Domain(_TextRegex):
    __slots__ = ()
    code = "d"
    help = "Domain"

    def __call__(self, flow: Flow) -> bool:
        if not isinstance(flow, HTTPFlow):
            return False
        request = flow.request
        search = self._search
        return search(request.host) is not None or search(request.pretty_host) is not None


class Url(_TextRegex):
    __slots__ = ()
    code = "u"
    help = "URL"

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, HTTPFlow) and self._search(flow.request.pretty_url) is not None


class Method(_TextRegex):
    # mitmproxy searches the method's bytes; it is an ASCII token either way.
    __slots__ = ()
    code = "m"
    help = "Method"

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, HTTPFlow) and self._search(flow.request.method) is not None


# -- headers and content types ------------------------------------------------------


class _MessageRegex(_BytesRegex):
    """
    Searches an HTTP flow's request and response (those it has), or only
    one of them where a subclass turns the other off; L{_found} says whether
    one message matches.
    """

    __slots__ = ()
    request: ClassVar[bool] = True
    response: ClassVar[bool] = True

    def __call__(self, flow: Flow) -> bool:
        return isinstance(flow, HTTPFlow) and self._in_messages(flow)

    def _in_messages(self, flow: HTTPFlow) -> bool:
        if self.request and self._found(flow.request):
            return True
        response = flow.response
        return self.response and response is not None and self._found(response)

    def _found(self, message: Message) -> bool:
        raise NotImplementedError


class _HeaderRegex(_MessageRegex):
    """
    Searches the header block, C{"Name: value\\r\\n"} lines as received.
    """

    __slots__ = ()
    flags = re.MULTILINE

    def _found(self, message: Message) -> bool:
        return self._search(message.headers.to_bytes()) is not None


class Header(_HeaderRegex):
    __slots__ = ()
    code = "h"
    help = "Header"


class RequestHeader(_HeaderRegex):
    __slots__ = ()
    code = "hq"
    help = "Request header"
    response = False


class ResponseHeader(_HeaderRegex):
    __slots__ = ()
    code = "hs"
    help = "Response header"
    request = False


class _ContentTypeRegex(_MessageRegex):
    __slots__ = ()

    def _found(self, message: Message) -> bool:
        return _has_content_type(self._search, message)


class ContentType(_ContentTypeRegex):
    __slots__ = ()
    code = "t"
    help = "Content-type header"


class RequestContentType(_ContentTypeRegex):
    __slots__ = ()
    code = "tq"
    help = "Request Content-Type header"
    response = False


class ResponseContentType(_ContentTypeRegex):
    __slots__ = ()
    code = "ts"
    help = "Response Content-Type header"
    request = False


# -- bodies and messages ------------------------------------------------------------


class _BodyRegex(_MessageRegex):
    """
    Searches bodies (decoded, or raw when they do not decode) and, as
    mitmproxy does, a WebSocket flow's messages and a TCP flow's messages.
    """

    __slots__ = ()
    flags = re.DOTALL

    def __call__(self, flow: Flow) -> bool:
        if isinstance(flow, HTTPFlow):
            if self._in_messages(flow):
                return True
            return flow.websocket is not None and self._search_messages(flow.websocket.messages)
        if isinstance(flow, TCPFlow):
            return self._search_messages(flow.messages)
        return False

    def _found(self, message: Message) -> bool:
        content = message.get_content(strict=False)
        return content is not None and self._search(content) is not None

    def _search_messages(self, relayed: Sequence[WebSocketMessage | TCPMessage]) -> bool:
        search = self._search
        wanted = (self.response, self.request)  # by from_client
        return any(wanted[each.from_client] and search(each.content) is not None
                   for each in relayed)


class Body(_BodyRegex):
    __slots__ = ()
    code = "b"
    help = "Body"


class RequestBody(_BodyRegex):
    __slots__ = ()
    code = "bq"
    help = "Request body"
    response = False


class ResponseBody(_BodyRegex):
    __slots__ = ()
    code = "bs"
    help = "Response body"
    request = False


# -- connections and annotations ---------------------------------------------------------


class Source(_TextRegex):
    __slots__ = ()
    code = "src"
    help = "Match source address"

    def __call__(self, flow: Flow) -> bool:
        address = flow.client_conn.address
        return address is not None and self._search(f"{address[0]}:{address[1]}") is not None


class Destination(_TextRegex):
    __slots__ = ()
    code = "dst"
    help = "Match destination address"

    def __call__(self, flow: Flow) -> bool:
        server = flow.server_conn
        if server is None or not server.address:
            return False
        address = server.address
        return self._search(f"{address[0]}:{address[1]}") is not None


class Meta(_TextRegex):
    __slots__ = ()
    code = "meta"
    help = "Flow metadata"
    flags = re.MULTILINE

    def __call__(self, flow: Flow) -> bool:
        lines = "\n".join(f"{key}: {value}" for key, value in flow.metadata.items())
        return self._search(lines) is not None


class Marker(_TextRegex):
    __slots__ = ()
    code = "marker"
    help = "Match marked flows with specified marker"

    def __call__(self, flow: Flow) -> bool:
        return self._search(flow.marked) is not None


class Comment(_TextRegex):
    __slots__ = ()
    code = "comment"
    help = "Flow comment"
    flags = re.MULTILINE

    def __call__(self, flow: Flow) -> bool:
        return self._search(flow.comment) is not None


OPERATORS: dict[str, type[Operator]] = {
    operator.code: operator
    for operator in (
        All, Asset, HasError, Marked, IsHTTP, IsWebSocket, IsTCP, IsUDP, IsDNS, NoResponse,
        HasResponse, Replayed, ReplayedRequest, ReplayedResponse, StatusCode,
        Domain, Url, Method, Header, RequestHeader, ResponseHeader, ContentType,
        RequestContentType, ResponseContentType, Body, RequestBody, ResponseBody,
        Source, Destination, Meta, Marker, Comment,
    )
}
"""Every operator by its code (C{"d"} for C{~d})."""
