# -*- test-case-name: tests.test_interfaces -*-
"""
The addon events: one zope interface per event, grouped by family.

An addon is any object (or a script module) with methods named after events.
It need not declare anything, but declaring what it implements lets
C{verifyObject} check it::

    from zope.interface import implementer
    from interceptor.interfaces import IRequest

    @implementer(IRequest)
    class AddHeader:
        def request(self, flow):
            flow.request.headers["X-Seen"] = "1"

Every hook may return C{None}, a L{twisted.internet.defer.Deferred}, or a
coroutine (an C{async def} hook).  The proxy waits for it before calling the
next addon in the chain, and the flow (or connection) the event is about waits
with it; other flows and connections do not.

Each event has its own interface (L{IRequest}, L{ITick}, ...) stating its
arguments and guarantee; the family interfaces (L{IHTTPEvents}, ...) group
them.  L{EVENT_INTERFACES} maps every event name to its interface.

Flows loaded from a file (the C{rfile} option, C{-r}) come through these
same events, in the order a live flow of their kind fired them, with
C{flow.live == False} (as mitmproxy's loaded flows); replayed flows too,
live, with C{flow.is_replay} set (C{"request"}: client replay sent it
again; C{"response"}: server replay answered it).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Optional, Union

from twisted.internet.defer import Deferred
from zope.interface import Interface

if TYPE_CHECKING:
    from interceptor.core.log import LogEntry
    from interceptor.core.options import Options
    from interceptor.model.connection import ServerConnection
    from interceptor.model.flow import HTTPFlow
    from interceptor.model.tcp import TCPFlow

HookResult = Optional[Union["Deferred[Any]", Coroutine[Any, Any, Any]]]
"""
What a hook returns: None, or a Deferred or a coroutine (an C{async def}
hook) that the proxy waits for.  The arguments that are layers
(C{root_layer}, C{layer}) are typed C{Any}: their types live in
L{interceptor.layers}, which this module does not depend on.
"""


class IConfigure(Interface):
    """
    An addon handling the C{configure} event.
    """

    def configure(options: Options, updated: set[str]) -> HookResult:
        """
        Called once on start-up and whenever options change.

        @param options: The L{interceptor.options.Options} with the whole
            current configuration.
        @param updated: A set of option names: every name on start-up, and
            only the changed ones afterwards.  Raising
            L{interceptor.options.OptionsError} rejects the change and every
            option keeps its previous value.
        """


class IDone(Interface):
    """
    An addon handling the C{done} event.
    """

    def done() -> HookResult:
        """
        Called once when the addon is unloaded, or when the proxy shuts down.
        A returned Deferred is waited for before shutdown completes.
        """


class ILog(Interface):
    """
    An addon handling the C{log} event.
    """

    def log(entry: LogEntry) -> HookResult:
        """
        Called for every log line of the proxy.

        @param entry: A L{interceptor.log.LogEntry}: C{entry.msg} is the text,
            C{entry.level} one of C{"debug"}, C{"info"}, C{"alert"}, C{"warn"},
            C{"error"} (records of Python's C{logging} module come through
            too, at their level).
        """


class IStart(Interface):
    """
    An addon handling the C{start} event.
    """

    def start() -> object:
        """
        Called once when the addon is loaded, before any other event.  A
        return value other than C{None} replaces the addon.
        """


class IRunning(Interface):
    """
    An addon handling the C{running} event.
    """

    def running() -> HookResult:
        """
        Called once when the proxy is up: started, and listening on every
        endpoint it was given (mitmproxy's C{running}).  An addon loaded
        later does not get it.
        """


class ITick(Interface):
    """
    An addon handling the C{tick} event.
    """

    def tick() -> HookResult:
        """
        Called at a regular sub-second interval (option C{tick_interval},
        0.1 s by default) while the addon is loaded.  A tick that has not
        finished is never started again re-entrantly.
        """


class IClientConnect(Interface):
    """
    An addon handling the C{clientconnect} event.
    """

    def clientconnect(root_layer: Any) -> HookResult:
        """
        Called when a client connects to the proxy.  One connection may carry
        many requests.  Setting C{root_layer.client_conn.error} (a reason)
        refuses the client: the connection is closed before any of its
        bytes are read.

        @param root_layer: The connection's root layer;
            C{root_layer.client_conn.address} is the client's address.
        """


class IClientDisconnect(Interface):
    """
    An addon handling the C{clientdisconnect} event.
    """

    def clientdisconnect(root_layer: Any) -> HookResult:
        """
        Called when a client connection has closed.

        @param root_layer: The root layer passed to C{clientconnect}.
        """


class INextLayer(Interface):
    """
    An addon handling the C{next_layer} event.
    """

    def next_layer(layer: Any) -> object:
        """
        Called whenever the proxy decides which layer handles the next bytes
        of a connection.  Returning another layer object (or setting
        C{layer.layer}) makes the proxy use it.

        @param layer: The layer the proxy chose.
        """


class IServerConnect(Interface):
    """
    An addon handling the C{serverconnect} event.
    """

    def serverconnect(server_conn: ServerConnection) -> HookResult:
        """
        Called before the proxy connects to an upstream server.

        @param server_conn: An L{interceptor.connection.ServerConnection},
            guaranteed to have a non-None C{address}.
        """


class IServerDisconnect(Interface):
    """
    An addon handling the C{serverdisconnect} event.
    """

    def serverdisconnect(server_conn: ServerConnection) -> HookResult:
        """
        Called when a connection to an upstream server has closed.

        @param server_conn: The L{interceptor.connection.ServerConnection}.
        """


class IHTTPConnect(Interface):
    """
    An addon handling the C{http_connect} event.
    """

    def http_connect(flow: HTTPFlow) -> HookResult:
        """
        Called for an HTTP CONNECT request.  Setting a non-2xx
        C{flow.response} sends it to the client and closes the connection.
        CONNECT requests do not fire the other HTTP events.

        @param flow: An L{interceptor.flow.HTTPFlow} with a non-None
            C{request}.
        """


class IRequestHeaders(Interface):
    """
    An addon handling the C{requestheaders} event.
    """

    def requestheaders(flow: HTTPFlow) -> HookResult:
        """
        Called when a request's headers have arrived, before its body is
        read.  Setting C{flow.request.stream} here streams the body.

        @param flow: An L{interceptor.flow.HTTPFlow} with a non-None
            C{request}.
        """


class IRequest(Interface):
    """
    An addon handling the C{request} event.
    """

    def request(flow: HTTPFlow) -> HookResult:
        """
        Called when a whole request has arrived.  Setting C{flow.response}
        here (or in C{requestheaders}) answers the client without contacting
        the server.

        @param flow: An L{interceptor.flow.HTTPFlow} with a non-None
            C{request}.
        """


class IResponseHeaders(Interface):
    """
    An addon handling the C{responseheaders} event.
    """

    def responseheaders(flow: HTTPFlow) -> HookResult:
        """
        Called when a response's headers have arrived, before its body is
        read (also for a 101 Switching Protocols, before the connection
        switches).  Setting C{flow.response.stream} here streams the body.

        @param flow: An L{interceptor.flow.HTTPFlow} with non-None C{request}
            and C{response}; the response has no content yet.
        """


class IResponse(Interface):
    """
    An addon handling the C{response} event.
    """

    def response(flow: HTTPFlow) -> HookResult:
        """
        Called when a whole response has arrived.

        @param flow: An L{interceptor.flow.HTTPFlow} with non-None C{request}
            and C{response}; the body is in C{flow.response.content} unless
            it was streamed (then C{flow.response.stream} is set).
        """


class IError(Interface):
    """
    An addon handling the C{error} event.
    """

    def error(flow: HTTPFlow) -> HookResult:
        """
        Called when a flow fails: an upstream that refuses, resets, times out
        or answers with an invalid response, or a client that goes away.  A
        valid HTTP error response is a response, not an error.  It is the
        flow's last event: it comes after the hooks of an event still
        running for the flow, and no event follows it.

        @param flow: A flow with a non-None C{error}
            (C{flow.error.msg} says what happened).
        """


class IWebSocketHandshake(Interface):
    """
    An addon handling the C{websocket_handshake} event.
    """

    def websocket_handshake(flow: HTTPFlow) -> HookResult:
        """
        Called when a client asks to upgrade to WebSocket; the handshake
        headers may be changed.

        @param flow: The HTTP flow of the handshake, with a non-None
            C{request}.
        """


class IWebSocketStart(Interface):
    """
    An addon handling the C{websocket_start} event.
    """

    def websocket_start(flow: HTTPFlow) -> HookResult:
        """
        Called when a WebSocket connection is established.

        @param flow: The WebSocket flow.
        """


class IWebSocketMessage(Interface):
    """
    An addon handling the C{websocket_message} event.
    """

    def websocket_message(flow: HTTPFlow) -> HookResult:
        """
        Called for each WebSocket message from the client or the server.  The
        newest message is C{flow.messages[-1]}; it says who sent it, may be
        changed, and may be killed.  It is TEXT or BINARY.

        @param flow: The WebSocket flow.
        """


class IWebSocketEnd(Interface):
    """
    An addon handling the C{websocket_end} event.
    """

    def websocket_end(flow: HTTPFlow) -> HookResult:
        """
        Called when a WebSocket connection ends.

        @param flow: The WebSocket flow.
        """


class IWebSocketError(Interface):
    """
    An addon handling the C{websocket_error} event.
    """

    def websocket_error(flow: HTTPFlow) -> HookResult:
        """
        Called when a WebSocket connection fails, e.g. closes unexpectedly.

        @param flow: The WebSocket flow.
        """


class ITCPStart(Interface):
    """
    An addon handling the C{tcp_start} event.
    """

    def tcp_start(flow: TCPFlow) -> HookResult:
        """
        Called when TCP relaying starts.

        @param flow: An L{interceptor.flow.TCPFlow}.
        """


class ITCPMessage(Interface):
    """
    An addon handling the C{tcp_message} event.
    """

    def tcp_message(flow: TCPFlow) -> HookResult:
        """
        Called for each chunk of bytes from the client or the server.  The
        newest message is C{flow.messages[-1]}; it says who sent it and may
        be changed.

        @param flow: An L{interceptor.flow.TCPFlow}.
        """


class ITCPEnd(Interface):
    """
    An addon handling the C{tcp_end} event.
    """

    def tcp_end(flow: TCPFlow) -> HookResult:
        """
        Called when TCP relaying ends.

        @param flow: An L{interceptor.flow.TCPFlow}.
        """


class ITCPError(Interface):
    """
    An addon handling the C{tcp_error} event.
    """

    def tcp_error(flow: TCPFlow) -> HookResult:
        """
        Called when a relayed TCP connection fails, e.g. is reset.

        @param flow: An L{interceptor.flow.TCPFlow}.
        """


class IGeneralEvents(IConfigure, IDone, ILog, IStart, IRunning, ITick):
    """
    Life-cycle events of an addon and of the proxy.
    """


class IConnectionEvents(IClientConnect, IClientDisconnect, INextLayer, IServerConnect, IServerDisconnect):
    """
    Events about client and server connections.
    """


class IHTTPEvents(IHTTPConnect, IRequestHeaders, IRequest, IResponseHeaders, IResponse, IError):
    """
    Events of HTTP flows.  Per request, in order: C{requestheaders},
    C{request}, C{responseheaders}, C{response}; or C{error} at any point.
    """


class IWebSocketEvents(IWebSocketHandshake, IWebSocketStart, IWebSocketMessage, IWebSocketEnd, IWebSocketError):
    """
    Events of WebSocket connections, fired after an HTTP upgrade answered
    with 101 Switching Protocols; no HTTP events follow the handshake.
    """


class ITCPEvents(ITCPStart, ITCPMessage, ITCPEnd, ITCPError):
    """
    Events of connections relayed as raw TCP (never fired for HTTP or
    HTTPS connections).
    """


EVENT_INTERFACES = {
    "configure": IConfigure,
    "done": IDone,
    "log": ILog,
    "start": IStart,
    "running": IRunning,
    "tick": ITick,
    "clientconnect": IClientConnect,
    "clientdisconnect": IClientDisconnect,
    "next_layer": INextLayer,
    "serverconnect": IServerConnect,
    "serverdisconnect": IServerDisconnect,
    "http_connect": IHTTPConnect,
    "requestheaders": IRequestHeaders,
    "request": IRequest,
    "responseheaders": IResponseHeaders,
    "response": IResponse,
    "error": IError,
    "websocket_handshake": IWebSocketHandshake,
    "websocket_start": IWebSocketStart,
    "websocket_message": IWebSocketMessage,
    "websocket_end": IWebSocketEnd,
    "websocket_error": IWebSocketError,
    "tcp_start": ITCPStart,
    "tcp_message": ITCPMessage,
    "tcp_end": ITCPEnd,
    "tcp_error": ITCPError,
}
"""Every event name, mapped to the interface declaring it."""

EVENTS = frozenset(EVENT_INTERFACES)
"""Every event name."""

FAMILIES = (IGeneralEvents, IConnectionEvents, IHTTPEvents, IWebSocketEvents, ITCPEvents)
"""The interfaces grouping the events by family."""
