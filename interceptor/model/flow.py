# -*- test-case-name: tests.test_flow,tests.e2e.test_events,tests.e2e.test_flowmodel -*-
"""
Flows: one exchange the proxy saw, with what addons may inspect and change.

    def response(flow):
        print(flow.id, flow.request.url, flow.response.status_code)
        flow.metadata["seen"] = True

    def request(flow):
        if "ads" in flow.request.host:
            flow.kill()
"""

from __future__ import annotations

import copy
import time
from random import getrandbits
from typing import TYPE_CHECKING, Any, Optional, Self

from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.websocket import inject

if TYPE_CHECKING:
    from interceptor.model.request import Request
    from interceptor.model.response import Response
    from interceptor.model.websocket import WebSocketData, WebSocketMessage

__all__ = ["Flow", "HTTPFlow", "Error"]


# The version (4) and variant (RFC 4122) bits of a random UUID.
_UUID4_KEEP = ~(0xF000 << 64) & ~(0xC000 << 48)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_id() -> str:
    """
    A random (version 4) UUID string, as C{str(uuid.uuid4())} but at a
    third of its cost: an id is made for each flow a flow file records.
    Not for secrets: the bits come from C{random}, not the system's CSPRNG.
    """
    h = "%032x" % (getrandbits(128) & _UUID4_KEEP | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Error:
    """
    Why a flow failed.

    @ivar msg: A human-readable message.
    @ivar timestamp: When it happened.
    """

    __slots__ = ("msg", "timestamp")

    KILLED_MESSAGE = "Connection killed."

    def __init__(self, msg: str, timestamp: Optional[float] = None) -> None:
        self.msg = msg
        self.timestamp = time.time() if timestamp is None else timestamp

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return f"Error({self.msg!r})"


class Flow:
    """
    Fields every kind of flow has.

    @ivar client_conn: The L{ClientConnection} it came from.
    @ivar server_conn: The L{ServerConnection} it went to, or None.
    @ivar error: An L{Error} once it failed, else None.
    @ivar metadata: A dict for addons' own notes.
    @ivar killed: Whether L{kill} was called.
    @ivar marked: A marker an addon may set (mitmproxy's; "" for none).
    @ivar comment: A comment an addon may set.
    @ivar is_replay: C{"request"} for a flow client replay sent again,
        C{"response"} for one server replay answered, else None.
    @ivar intercepted: Always False: flows are held by returning a
        Deferred from a hook, not by mitmproxy's intercept.
    @ivar live: True for a flow the proxy is handling; False on a L{copy}.
    """

    type = "flow"

    def __init__(
        self, client_conn: ClientConnection, server_conn: Optional[ServerConnection] = None
    ) -> None:
        self._id: Optional[str] = None
        self.client_conn = client_conn
        self.server_conn = server_conn
        self.error: Optional[Error] = None
        self.metadata: dict[str, Any] = {}
        self.killed = False
        self.timestamp_created = time.time()
        self.marked = ""
        self.comment = ""
        self.is_replay: Optional[str] = None
        self.intercepted = False
        self.live = True

    def copy(self) -> Self:
        """
        A deep copy with a new id, not live (as mitmproxy's C{Flow.copy}).
        """
        duplicate = copy.deepcopy(self)
        duplicate._id = None
        duplicate.live = False
        return duplicate

    @property
    def id(self) -> str:
        """
        A unique id (a UUID string), made when first asked for.
        """
        if self._id is None:
            self._id = new_id()
        return self._id

    def kill(self) -> None:
        """
        Drop the flow: nothing more is sent for it and its client connection
        is closed.
        """
        self.killed = True
        if self.error is None:
            self.error = Error(Error.KILLED_MESSAGE)

    @property
    def killable(self) -> bool:
        """
        Whether the flow can still be killed.
        """
        return not self.killed


class HTTPFlow(Flow):
    """
    One HTTP request and its response.

    @ivar request: The L{interceptor.http.Request} (a flow always has one).
    @ivar response: The L{interceptor.http.Response}, or None until one
        arrives (or an addon sets one).
    @ivar websocket: The WebSocket data once the flow upgraded, else None.
    """

    type = "http"

    def __init__(
        self,
        client_conn: ClientConnection,
        server_conn: Optional[ServerConnection],
        request: Request,
    ) -> None:
        super().__init__(client_conn, server_conn)
        self.request = request
        self.response: Optional[Response] = None
        self.websocket: Optional[WebSocketData] = None

    @property
    def timestamp_start(self) -> Optional[float]:
        """
        When the request started (C{request.timestamp_start}).
        """
        return self.request.timestamp_start

    @property
    def messages(self) -> list[WebSocketMessage]:
        """
        The WebSocket messages of an upgraded flow (C{flow.messages[-1]} is
        the newest, as the event spec writes it); the same list as
        C{flow.websocket.messages}.  Empty before an upgrade.
        """
        if self.websocket is None:
            return []
        return self.websocket.messages

    @property
    def ended(self) -> bool:
        """
        Whether the WebSocket connection of an upgraded flow has closed
        (mitmproxy 2.x's C{WebSocketFlow.ended}); False before an upgrade.
        """
        return self.websocket is not None and self.websocket.ended

    def inject_message(self, endpoint: ClientConnection | ServerConnection, payload: bytes | str) -> None:
        """
        Send a message on the live WebSocket connection of this flow, as
        mitmproxy 2.x's C{WebSocketFlow.inject_message}: a str goes as a
        TEXT message, bytes as a BINARY one.  It is
        L{interceptor.websocket.inject} (so the message is recorded and
        passes the C{websocket_message} hooks); call it from a hook or the
        reactor thread.

        @param endpoint: Who receives it: C{flow.client_conn} or
            C{flow.server_conn}.
        @raise ValueError: C{endpoint} is neither of this flow's
            connections, or the flow has no live WebSocket connection.
        """
        if endpoint is self.client_conn:
            to_client = True
        elif endpoint is not None and endpoint is self.server_conn:
            to_client = False
        else:
            raise ValueError(
                f"inject_message: endpoint {endpoint!r} is neither flow.client_conn nor flow.server_conn")
        inject(self, to_client, payload, is_text=isinstance(payload, str))

    def __repr__(self) -> str:
        status = self.response.status_code if self.response is not None else None
        return f"<HTTPFlow {self.request.method} {self.request.url} {status}>"
