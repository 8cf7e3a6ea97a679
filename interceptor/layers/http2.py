# -*- test-case-name: tests.e2e.test_http2,tests.e2e.test_http2_streams -*-
"""
HTTP/2 toward the client (negotiated by ALPN), with the h2 package.

Every client stream is an L{HTTPFlow} run by an
L{interceptor.layers.exchange.HttpExchange}, with the same events as on
HTTP/1: C{requestheaders}, C{request}, C{responseheaders}, C{response}, or
C{error}; its client side is an L{H2ClientSide}.  Each stream waits on its
own hooks only.  Toward the server a stream goes over the connection's
L{H2ServerConnection} (when the server negotiated h2 too) or over an
HTTP/1.1 connection of its own (translation, with headers mapped per RFC
9113).

Flow control is end to end: data from one side is acknowledged to its
sender only once it has been handed to the other side (or buffered, within
the body limits), so a slow reader slows its writer instead of filling the
proxy's memory.  Server push is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    PingReceived,
    RemoteSettingsChanged,
    RequestReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.layers.contracts import ILayer, IServerConnection, IServerReplacer
from interceptor.layers.http1_framing import _no_delay
from interceptor.layers.http2_flood import CONTROL, EMPTY_DATA, RESETS, FloodGuard
from interceptor.layers.http2_frames import h2_config, initiate, stream_id_of
from interceptor.layers.http2_headers import (
    CONNECTION_HEADERS,
    request_from_h2,
)
from interceptor.layers.http2_client import H2ClientSide
from interceptor.layers.http1_server import Http1ServerConnection
from interceptor.layers.http2_server import (
    H2ServerConnection,
    H2Upstream,
    connect_upstream,
    switch_to_h2,
)
from interceptor.model.connection import ServerConnection
from interceptor.tls.handshake import server_name_for
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Headers, Request
from interceptor.transport.watchdog import SilenceWatch, Watchdog

if TYPE_CHECKING:
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = [
    "Http2Layer",
    "PREFACE",
    "h2c_start",
    "H2ClientSide",
    "H2ServerConnection",
    "H2Upstream",
    "CONNECTION_HEADERS",
    "switch_to_h2",
]

_log = Logger(namespace="interceptor.http2")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The HTTP/2 connection preface (RFC 9113 3.4), the first bytes of h2c with prior knowledge."""

_PREFACE_HEAD = PREFACE[:18]
"""The part an HTTP/1 parser reads as a request head (httptools stops after it)."""


def h2c_start(data: bytes, seen: int) -> Optional[bytes]:
    """
    The HTTP/1 parser refused C{data} after reading C{seen} bytes of the
    same request head in earlier reads: if that head was the preface's
    first part, the connection's bytes from its start for an HTTP/2 layer
    (h2c with prior knowledge); else None.
    """
    cut = len(_PREFACE_HEAD) - seen
    if cut < 0 or data[:cut] != _PREFACE_HEAD[seen:]:
        return None
    return _PREFACE_HEAD + data[cut:]


class _ClientWrites:
    """
    The push producer of an HTTP/2 client's transport: while its write
    buffer is full the streams send nothing more (their output then waits
    in the proxy, bounded, and holds their servers back), however large
    the windows the client granted.
    """

    def __init__(self, layer: "Http2Layer") -> None:
        self.layer = layer

    def pauseProducing(self) -> None:
        """
        The client is not reading fast enough.
        """
        self.layer.write_paused = True

    def resumeProducing(self) -> None:
        """
        The write buffer has drained: send again.
        """
        self.layer.write_paused = False
        self.layer.pump_all()

    def stopProducing(self) -> None:
        """
        The client has gone; connection_lost cleans up.
        """


@implementer(ILayer, IServerReplacer)
class Http2Layer:
    """
    The client-facing HTTP/2 layer of one connection.

    @ivar streams: The open streams by id.
    @ivar upstream_h2: The HTTP/2 upstream connection, when the server
        speaks h2.
    """

    def __init__(self, root: Any, target: Optional[tuple[str, str, int]], sni: Optional[str] = None) -> None:
        self.root = root
        self.master: Master = root.master
        self.options: Options = root.master.options
        self.client_conn = root.client_conn
        self.target = target
        self.sni = sni
        self.transport: Any = None
        self.gate = root.gate
        self.layer: Any = None
        self.conn = H2Connection(config=h2_config(False))
        self.streams: dict[int, H2ClientSide] = {}
        self.upstream_h2: Optional[H2ServerConnection] = None
        self.h2_waiters: Optional[list[Callable[[], None]]] = None
        self.upstream_error: Optional[str] = None
        self.closing = False
        self.write_paused = False
        self._producing = False
        self.idle = Watchdog.for_connection(self.master, self._idle_limit, self._idle_expired)
        self.silence = SilenceWatch(
            self.master.clock,
            self.options.read_timeout / 4,
            self._request_limit,
            self._request_silent,
        )
        self.flood = FloodGuard(self.master.clock, self.options)
        # Reverse mode: requests name the target (as the Host header does
        # for HTTP/1 clients), unless keep_host_header.
        mode = root.mode
        self.target_authority: Optional[str] = (
            mode.authority if mode.kind == "reverse" and not self.options.keep_host_header else None
        )

    def __repr__(self) -> str:
        return f"<Http2Layer {self.client_conn!r}>"

    pairing_transport = None
    """Server connections are paced by HTTP/2 windows, not paired with this transport."""

    def server_lost(self, server: IServerConnection) -> None:
        """
        A server connection closed: forget it.
        """
        # (Compared as the interface: mypy-zope sees no overlap between an
        # implementer class and its interface in an identity test.)
        current: Optional[IServerConnection] = self.upstream_h2
        if current is server:
            self.upstream_h2 = None

    def attach_transport(self, transport: Any) -> None:
        """
        Write to C{transport}; send our preface and settings.
        """
        self.transport = transport
        try:
            transport.registerProducer(_ClientWrites(self), True)
            self._producing = True
        except RuntimeError:
            _log.info("{client}: HTTP/2 writes not paced (the transport has a producer)",
                      client=self.client_conn.address)
        initiate(self.conn, client=False)
        self.flush()
        self.idle.start()

    def start(self) -> None:
        """
        The layer is in charge of the connection: a plain one (h2c with
        prior knowledge) is written to directly.
        """
        if self.transport is None:
            transport = self.root.transport
            _no_delay(transport)
            self.attach_transport(transport)

    def flush(self) -> None:
        """
        Send what h2 has queued.
        """
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        """
        Frames from the client.
        """
        if self.closing:
            return
        self.idle.touch()
        try:
            events = self.conn.receive_data(data)
        except (ProtocolError, H2Error) as e:
            _log.info("{client}: HTTP/2 protocol error: {error}", client=self.client_conn.address, error=str(e))
            self._terminate(ErrorCodes.PROTOCOL_ERROR, "HTTP/2 protocol error on the client connection")
            return
        self._dispatch(events)
        self.flush()

    def _dispatch(self, events: list[Any]) -> None:
        for event in events:
            handler = _CLIENT_HANDLERS.get(type(event))
            if handler is None:
                continue
            try:
                handler(self, event)
            except Exception:
                # A bug handling one stream fails that stream, not the connection.
                _log.failure("Error handling {event}", event=event)
                sid = stream_id_of(event)
                side = self.streams.get(sid) if sid is not None else None
                if side is not None:
                    side.exchange.fail("internal error in the proxy", 502)
            if self.closing:
                # (The connection ended, say for a flood: the rest of the
                # read is dropped.)
                return

    def _count(self, kind: int) -> None:
        """
        Count a frame that costs the proxy without serving anything; over
        its limit, the client gets GOAWAY ENHANCE_YOUR_CALM.
        """
        reason = self.flood.count(kind)
        if reason is not None:
            _log.info("{client}: HTTP/2 client sent {reason}; GOAWAY ENHANCE_YOUR_CALM",
                      client=self.client_conn.address, reason=reason)
            self._terminate(ErrorCodes.ENHANCE_YOUR_CALM, f"client connection closed: {reason}",
                            reason.encode())

    def _request_received(self, event: RequestReceived) -> None:
        request = request_from_h2(event.headers, self.target)
        if self.target_authority is not None:
            request.authority = self.target_authority
            if b"host" in request.headers:
                del request.headers[b"host"]
        flow = HTTPFlow(self.client_conn, None, request)
        side = H2ClientSide(self, event.stream_id, flow)
        self.streams[event.stream_id] = side
        if request.method == "CONNECT":
            # Tunnels inside an h2 stream (RFC 9113 8.5) are not relayed:
            # refuse this stream only, before any event.
            side.request_ended = True
            side.exchange.client_error(
                501, "Not Implemented", "CONNECT over HTTP/2 is not supported by this proxy."
            )
            return
        if self.target is None and self._names_proxy(request):
            # (h2c to a regular proxy, asked for the proxy itself: relayed,
            # it would come back here in HTTP/1 origin-form and be refused.)
            detail = (f"This is a proxy: the request names the proxy itself "
                      f"({request.host}:{request.port}), not a server to forward it to.")
            _log.info("{client}: 400 Bad Request: {detail}", client=self.client_conn.address, detail=detail)
            side.exchange.client_error(400, "Bad Request", detail)
            return
        if event.stream_ended is None:
            self.silence.touch(side)
        # (An END_STREAM on the headers also comes as its own StreamEnded
        # event, which completes the request.)
        side.exchange.start()

    def _names_proxy(self, request: Request) -> bool:
        sockname = self.client_conn.sockname
        return (
            sockname is not None
            and request.port == sockname[1]
            and request.host in (sockname[0], "localhost")
        )

    def _data_received(self, event: DataReceived) -> None:
        if not event.data and event.stream_ended is None:
            self._count(EMPTY_DATA)
        stream = self.streams.get(event.stream_id)
        if stream is None:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        self.silence.touch(stream)
        stream.request_data(event.data, event.flow_controlled_length)

    def _stream_ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            self.silence.forget(stream)
            stream.request_end()

    def _trailers_received(self, event: TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.exchange.flow.request.trailers = Headers(list(event.headers))

    def _stream_reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            self.silence.forget(stream)
            stream.exchange.client_failed(
                f"client reset the stream (error code {event.error_code!r})"
            )
        self._count(RESETS)

    def _settings_changed(self, event: RemoteSettingsChanged) -> None:
        # A larger SETTINGS_INITIAL_WINDOW_SIZE opens every stream's window
        # without a WINDOW_UPDATE (RFC 9113 6.9.2).
        self.pump_all()
        self._count(CONTROL)

    def _control_frame(self, event: Any) -> None:
        self._count(CONTROL)

    def _window_updated(self, event: WindowUpdated) -> None:
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.pump()
        else:
            self.pump_all()

    def pump_all(self) -> None:
        """
        Let every stream send what its windows allow.
        """
        for stream in list(self.streams.values()):
            stream.pump()

    def _terminated(self, event: ConnectionTerminated) -> None:
        for stream in list(self.streams.values()):
            stream.exchange.client_failed(
                f"client ended the connection (GOAWAY, {event.error_code!r})"
            )
        self.streams.clear()
        self.close()

    def _terminate(self, code: ErrorCodes, message: str, detail: Optional[bytes] = None) -> None:
        try:
            self.conn.close_connection(error_code=code, additional_data=detail)
            self.flush()
        except H2Error:
            pass
        for stream in list(self.streams.values()):
            stream.exchange.client_failed(message)
        self.streams.clear()
        self.close()

    def stream_done(self, stream: H2ClientSide) -> None:
        """
        A stream has finished both ways.
        """
        self.streams.pop(stream.stream_id, None)
        self.silence.forget(stream)
        if not self.streams:
            # Idle from now on (not from the client's last frame).
            self.idle.touch()

    # -- timeouts ---------------------------------------------------------

    def _idle_limit(self) -> Optional[float]:
        return None if self.streams else self.options.idle_timeout

    def _idle_expired(self, silence: float) -> None:
        _log.info("{client}: HTTP/2 connection idle for {silence:.1f} s; closing",
                  client=self.client_conn.address, silence=silence)
        try:
            self.conn.close_connection()
            self.flush()
        except H2Error:
            pass
        self.close()

    def _request_limit(self, stream: H2ClientSide) -> Optional[float]:
        # Not counted once the flow failed, or while the server has not
        # taken what the client sent (its window stays closed by that much).
        if stream.exchange.flow.error is not None or stream.request_unacked:
            return None
        read_timeout: float = self.options.read_timeout
        return read_timeout

    def _request_silent(self, stream: H2ClientSide, silence: float) -> None:
        stream.client_timed_out(silence)
        self.flush()

    def close(self) -> None:
        """
        Close the client connection.
        """
        if not self.closing:
            self.closing = True
            self._stop_timers()
            if self.upstream_h2 is not None:
                self.upstream_h2.close()
            if self.transport is not None:
                self._stop_producing()
                self.transport.loseConnection()

    def _stop_producing(self) -> None:
        # A TLS transport shuts down only once no producer is registered.
        if self._producing:
            self._producing = False
            self.write_paused = False
            self.transport.unregisterProducer()

    def _stop_timers(self) -> None:
        self.idle.stop()
        self.silence.stop()

    def connection_lost(self, reason: Failure) -> None:
        """
        The client went away.
        """
        self.closing = True
        self._stop_timers()
        for stream in list(self.streams.values()):
            stream.exchange.client_failed("client disconnected")
        self.streams.clear()
        if self.upstream_h2 is not None:
            self.upstream_h2.close()

    def open_server(
        self, server_conn: ServerConnection, tls: Optional[tuple[Optional[str], list[bytes]]], offers_h2: bool
    ) -> Deferred[IServerConnection]:
        """
        A new connection to C{server_conn}'s address (after
        C{serverconnect}): the HTTP/2 connection the next streams share
        when the server negotiated h2 (streams asking for the target
        meanwhile wait for it while C{offers_h2}), else an HTTP/1.1
        connection for one stream.
        """
        if offers_h2:
            self.h2_waiters = []
        upstream = Http1ServerConnection(self, server_conn, tls=tls, single_use=True)
        d = connect_upstream(self, upstream)

        def release_waiters() -> None:
            if offers_h2:
                waiters, self.h2_waiters = self.h2_waiters, None
                for waiter in waiters or ():
                    waiter()

        def connected(connection: IServerConnection) -> IServerConnection:
            if isinstance(connection, H2ServerConnection):
                self.upstream_h2 = connection
            release_waiters()
            return connection

        def failed(failure: Failure) -> Failure:
            release_waiters()
            return failure

        return d.addCallbacks(connected, failed)

    def replace_server(self, server: IServerConnection) -> Deferred[Optional[H2ServerConnection]]:
        """
        The server is ending C{server} (GOAWAY): the HTTP/2 connection to
        the target the next streams use, opened now if need be.
        """
        h2 = self.get_upstream_h2()
        if h2 is not None:
            return succeed(h2)
        target = self.target
        if self.closing or target is None or target[0] != "https":
            # (An HTTP/2 server connection only ever goes to an https target.)
            return succeed(None)
        waiting: Deferred[Optional[H2ServerConnection]] = Deferred()
        if self.h2_waiters is not None:
            # A connection to the target is being opened: it may speak h2.
            self.h2_waiters.append(lambda: waiting.callback(self.get_upstream_h2()))
            return waiting
        _, host, port = target
        tls = (self.sni or server_name_for(host), [b"h2", b"http/1.1"])

        def opened(connection: IServerConnection) -> Optional[H2ServerConnection]:
            h2 = self.get_upstream_h2()
            if h2 is None:
                # The server answered in HTTP/1.1 this time.
                connection.close()
            return h2

        return self.open_server(ServerConnection((host, port)), tls, True).addCallback(opened)

    def get_upstream_h2(self) -> Optional[H2ServerConnection]:
        """
        The live HTTP/2 upstream connection, if any.
        """
        up = self.upstream_h2
        if up is not None and up.usable:
            return up
        return None


_CLIENT_HANDLERS: dict[type, Callable[[Http2Layer, Any], None]] = {
    RequestReceived: Http2Layer._request_received,
    DataReceived: Http2Layer._data_received,
    StreamEnded: Http2Layer._stream_ended,
    TrailersReceived: Http2Layer._trailers_received,
    StreamReset: Http2Layer._stream_reset,
    WindowUpdated: Http2Layer._window_updated,
    RemoteSettingsChanged: Http2Layer._settings_changed,
    SettingsAcknowledged: Http2Layer._control_frame,
    PingReceived: Http2Layer._control_frame,
    PingAckReceived: Http2Layer._control_frame,
    ConnectionTerminated: Http2Layer._terminated,
}
