# -*- test-case-name: tests.e2e.test_tcp -*-
"""
Raw TCP: relays a client connection's bytes to a server and back, firing
C{tcp_start}, C{tcp_message} (one per chunk read, either direction),
C{tcp_end} (clean close) or C{tcp_error} (reset, failure to connect).

The proxy picks L{TcpLayer} for connections and CONNECT tunnels whose
destination matches the option C{tcp_hosts}, and for tunnelled bytes that
are neither TLS nor HTTP.  An addon may pick it itself in C{next_layer}::

    from interceptor.layers.tcp import TcpLayer

    def next_layer(layer):
        address = layer.root.tunnel_address
        if address and address[1] == 5432:
            return TcpLayer(layer.root, address)

Half-closes are relayed: when one side shuts its writing half, the proxy
shuts its writing half toward the other side and keeps relaying the other
direction; the connection ends once both sides are done.  Backpressure is
the port forwarder's: each side's read gate is the streaming producer
registered on the other side's transport, and a C{tcp_message} hook that
returns an unfired Deferred holds reading from the sender until it fires.

L{interceptor.layers.relay.RelayLayer} is the same relay without the TCP
events (TLS connections passed through by C{ignore_hosts}).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional, cast

from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IProtocol,
    ITCPTransport,
    ITransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.core.options import parse_size
from interceptor.layers.contracts import IHalfCloseLayer, ILayer
from interceptor.model.connection import ServerConnection
from interceptor.transport.fast.fastwrite import writer_for
from interceptor.model.flow import Error
from interceptor.transport.connect import open_connection
from interceptor.transport.readgate import ReadGate
from interceptor.layers.tcp_inject import relay_of
from interceptor.model.tcp import TCPFlow, TCPMessage

__all__ = ["TcpLayer"]

_log = Logger(namespace="interceptor.tcp")

_EVENTS = ("tcp_start", "tcp_message", "tcp_end", "tcp_error")
# Bytes read per recv() while relaying: fewer, larger reads per megabyte.
_READ_SIZE = 1 << 20
_EOF = None


class _RelayTransport(ITCPTransport, IConsumer):
    """
    What the relay uses of each side's transport: a TCP connection's (or TLS
    over one, whose wrapper declares the interfaces of the transport it
    wraps), and the consumer the other side's read gate is registered with.
    (For the type checker: Twisted types a protocol's transport as an
    ITransport, or None before it connects.)
    """


@implementer(IHalfCloseableProtocol)
class _TcpUpstream(Protocol):
    """
    The server side of a TCP relay.
    """

    def __init__(self, layer: "TcpLayer") -> None:
        self.layer = layer
        self.gate: Optional[ReadGate] = None

    def connectionMade(self) -> None:
        """
        Pair the two transports and flush what the client already sent.
        """
        self.layer.upstream_connected(self)

    def dataReceived(self, data: bytes) -> None:
        """
        Server bytes, on their way to the client.
        """
        layer = self.layer
        if layer.direct:
            layer._write_client(data)
        else:
            layer.received(False, data)

    def readConnectionLost(self) -> None:
        """
        The server shut its writing half.
        """
        self.layer.received(False, _EOF)

    def writeConnectionLost(self) -> None:
        """
        Our writing half toward the server is shut.
        """

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        """
        The server connection is closed.
        """
        self.layer.upstream_lost(reason)


class _Direction:
    """
    One direction of the relay: the chunks waiting for their hooks.
    """

    __slots__ = ("from_client", "queue", "busy", "eof")

    def __init__(self, from_client: bool) -> None:
        self.from_client = from_client
        # Chunks, and the end (_EOF).
        self.queue: deque[Optional[bytes]] = deque()
        self.busy = False
        self.eof = False


@implementer(IHalfCloseLayer)
class TcpLayer:
    """
    Relays raw TCP between the client and C{address}, with the TCP events
    (it relays the client's half-close, hence L{IHalfCloseLayer}).

    @ivar root: The L{interceptor.proxy.ProxyProtocol} of the client.
    @ivar address: The (host, port) the bytes go to.
    @ivar server_conn: The L{ServerConnection} to it.
    @ivar flow: The L{TCPFlow} addons see (None when no addon handles a
        TCP event, or for the event-less L{RelayLayer} subclass).
    @ivar direct: Whether each side's bytes go straight to the other
        side's writer (both sides up, and no addon handles TCP events).
    """

    #: Whether this layer fires the tcp_* events.
    emit_events = True

    def __init__(self, root: Any, address: tuple[str, int], transport: Any = None) -> None:
        self.root = root
        self.master = root.master
        # (A copy: an addon may pass a list.)
        self.address: tuple[str, int] = (address[0], address[1])
        self.client_transport: _RelayTransport = (
            transport if transport is not None else root.transport
        )
        self.server_conn = ServerConnection(self.address)
        self.flow: Optional[TCPFlow] = None
        self.upstream: Optional[_TcpUpstream] = None
        self.layer: Optional[ILayer] = None
        self._watch_messages = False
        # Whether the tcp_start hooks are done (connecting, and tcp_message
        # for bytes that arrive meanwhile, wait for them).
        self._tcp_started = False
        self._before_start: list[tuple[bool, Optional[bytes]]] = []
        self._pending: list[bytes] = []
        self._pending_eof = False
        self._connecting = False
        self._client_lost = False
        self._upstream_lost = False
        self._finished = False
        self._error: Optional[str] = None
        self._held = 0
        self._to_server = _Direction(True)
        self._to_client = _Direction(False)
        self._write_client = writer_for(self.client_transport)
        self._write_server: Optional[Callable[[bytes], None]] = None
        self.direct = False
        self._history_limit = parse_size(self.master.options.tcp_history_size)
        self._kept = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address}>"

    # -- start and connect ----------------------------------------------------

    def start(self) -> None:
        """
        Fire C{tcp_start}, then connect once its hooks are done (or on the
        first client bytes with C{connection_strategy=lazy}); a flow killed
        in C{tcp_start} never reaches the server.
        """
        addons = self.master.addons
        if self.emit_events and any(addons.has_hooks(e) for e in _EVENTS):
            self.flow = TCPFlow(self.root.client_conn, self.server_conn)
            relay_of[self.flow] = self
            self._watch_messages = addons.has_hooks("tcp_message")
            d = addons.trigger("tcp_start", self.flow)
            if not d.called:
                self._hold()
                d.addCallback(lambda _: self._release())
            d.addCallback(lambda _: self.kill() if self.flow.killed else self._started())
        else:
            self._started()

    def _started(self) -> None:
        self._tcp_started = True
        early, self._before_start = self._before_start, []
        for from_client, data in early:
            self.received(from_client, data)
        # (Lazy: the replayed bytes connected already, if there were any.)
        if self.master.options.connection_strategy != "lazy":
            self.connect()

    def _hold(self) -> None:
        self._held += 1
        self.root.gate.hold()

    def _release(self) -> None:
        if self._held:
            self._held -= 1
            self.root.gate.release()

    def connect(self) -> None:
        """
        Open the server connection (after C{serverconnect}); the client is
        not read meanwhile.
        """
        if self._connecting or self._client_lost or (self.flow is not None and self.flow.killed):
            return
        self._connecting = True
        self._hold()
        d = self.master.addons.trigger("serverconnect", self.server_conn)
        d.addCallback(lambda _: self._open())
        d.addErrback(self._connect_failed)

    def _open(self) -> Optional[Deferred[IProtocol]]:
        if self._client_lost:
            self._release()
            self._upstream_lost = True
            self._maybe_finish()
            return None
        return open_connection(self.master, self.address, _TcpUpstream(self))

    def _connect_failed(self, failure: Failure) -> None:
        message = f"Cannot connect to {self.address[0]}:{self.address[1]}: {failure.getErrorMessage()}"
        # (The tcp_error event carries it: the dumper prints its one line.)
        _log.debug("{client}: {error}", client=self.root.client_conn.address, error=message)
        self.server_conn.error = message
        self._error = message
        self._upstream_lost = True
        self._release()
        self.client_transport.loseConnection()
        self._maybe_finish()

    def upstream_connected(self, upstream: _TcpUpstream) -> None:
        """
        Both sides are up: pair them and relay.
        """
        transport = _relay_transport(upstream)
        if self._client_lost:
            transport.abortConnection()
            return
        self.upstream = upstream
        self.server_conn.timestamp_start = self.server_conn.timestamp_tcp_setup = (
            self.master.reactor.seconds()
        )
        peer, host = transport.getPeer(), transport.getHost()
        self.server_conn.peername = (peer.host, peer.port)
        self.server_conn.sockname = (host.host, host.port)
        upstream.gate = ReadGate(transport)
        transport.registerProducer(self.root.gate, True)
        self.client_transport.registerProducer(upstream.gate, True)
        for t in (transport, self.client_transport):
            if isinstance(t, FileDescriptor):
                # (How much a socket transport reads at once; a wrapper
                # around one has no read size of its own.)
                t.bufferSize = _READ_SIZE
        self._write_server = writer_for(transport)
        pending, self._pending = self._pending, []
        for data in pending:
            self._write_server(data)
        if self._pending_eof:
            self._shut_write(transport)
        if self.flow is None and not self._to_server.queue:
            # No addon handles TCP events: relay the bytes without the queues.
            self.direct = True
        self._release()

    # -- relaying -------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """
        Bytes from the client.
        """
        if self.direct:
            # (Direct: the server side is up.)
            cast("Callable[[bytes], None]", self._write_server)(data)
        else:
            self.received(True, data)

    def read_connection_lost(self) -> None:
        """
        The client shut its writing half.
        """
        self.received(True, _EOF)

    def received(self, from_client: bool, data: Optional[bytes]) -> None:
        """
        A chunk (or the end, C{None}) from one side: run its C{tcp_message}
        hooks in order, then forward it.
        """
        if not self._tcp_started and self.flow is not None:
            self._before_start.append((from_client, data))
            return
        if from_client and self.upstream is None and not self._connecting and data is not _EOF:
            self.connect()
        direction = self._to_server if from_client else self._to_client
        if not self._watch_messages or data is _EOF and not direction.busy:
            if data is _EOF:
                self._forward_eof(direction)
            else:
                if self.flow is not None:
                    # Recorded for the addons that handle other TCP events.
                    self._keep(TCPMessage(from_client, data, self.master.reactor.seconds()))
                self._forward(from_client, data)
            return
        direction.queue.append(data)
        self._drain(direction)

    def _drain(self, direction: _Direction) -> None:
        # (Messages are queued only while tcp_message hooks watch the flow.)
        flow = cast(TCPFlow, self.flow)
        while direction.queue and not direction.busy:
            data = direction.queue.popleft()
            if data is _EOF:
                self._forward_eof(direction)
                continue
            message = TCPMessage(direction.from_client, data, self.master.reactor.seconds())
            self._keep(message)
            d = self.master.addons.trigger("tcp_message", flow)
            if d.called:
                self._deliver(message)
                continue
            direction.busy = True
            gate = self.root.gate if direction.from_client else (
                self.upstream.gate if self.upstream is not None else None
            )
            if gate is not None:
                gate.hold()

            def done(_: Any, message: TCPMessage = message, gate: Any = gate) -> None:
                if gate is not None:
                    gate.release()
                direction.busy = False
                self._deliver(message)
                self._drain(direction)

            d.addCallback(done)
            d.addErrback(lambda f: _log.failure("Error relaying {flow}", f, flow=flow))
            return

    def _keep(self, message: TCPMessage) -> None:
        """
        Add C{message} to the flow's history.  Once the kept contents pass
        C{tcp_history_size}, the oldest messages are dropped down to half of
        it at once (the newest is always kept): memory stays bounded on a
        long connection, and a stream of small chunks costs no more per
        chunk than a few large ones.
        """
        messages = cast(TCPFlow, self.flow).messages
        messages.append(message)
        limit = self._history_limit
        if limit is None:
            return
        self._kept += len(message.content)
        if self._kept <= limit:
            return
        kept, first = 0, len(messages)
        while first > 0:
            size = len(messages[first - 1].content)
            if kept + size > limit // 2 and first < len(messages):
                break
            kept += size
            first -= 1
        del messages[:first]
        self._kept = kept

    def _deliver(self, message: TCPMessage) -> None:
        if cast(TCPFlow, self.flow).killed:
            self.kill()
            return
        if message.killed or not message.content:
            return
        self._forward(message.from_client, bytes(message.content))

    def _forward(self, from_client: bool, data: bytes) -> None:
        if from_client:
            if self._write_server is not None:
                self._write_server(data)
            elif not self._upstream_lost:
                self._pending.append(data)
        elif not self._client_lost:
            self._write_client(data)

    def _forward_eof(self, direction: _Direction) -> None:
        if direction.eof:
            # (Twisted tells again when a paused reader is resumed after EOF.)
            return
        direction.eof = True
        if direction.from_client:
            if self.upstream is not None:
                self._shut_write(_relay_transport(self.upstream))
            elif not self._connecting or self._upstream_lost:
                # Nothing was ever sent: there is no server to tell.
                self.client_transport.loseConnection()
            else:
                self._pending_eof = True
        else:
            self._shut_write(self.client_transport)
        if self._to_server.eof and self._to_client.eof:
            self.close()

    @staticmethod
    def _shut_write(transport: ITransport) -> None:
        # Half-close where the transport can (ITCPTransport.loseWriteConnection;
        # a TLS wrapper declares the interfaces of the transport it wraps),
        # else close.
        if ITCPTransport.providedBy(transport):
            transport.loseWriteConnection()
        else:
            transport.loseConnection()

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """
        Close both sides once what was written has been sent.
        """
        self.client_transport.loseConnection()
        if self.upstream is not None and self.upstream.transport is not None:
            _relay_transport(self.upstream).loseConnection()

    def kill(self) -> None:
        """
        Drop both sides now (an addon killed the flow).
        """
        if self._error is None:
            self._error = Error.KILLED_MESSAGE
        self.client_transport.abortConnection()
        if self.upstream is not None and self.upstream.transport is not None:
            _relay_transport(self.upstream).abortConnection()

    def upstream_lost(self, reason: Optional[Failure]) -> None:
        """
        The server connection closed: a reset is an error; either way the
        client side is closed too.
        """
        self._upstream_lost = True
        self.server_conn.timestamp_end = self.master.reactor.seconds()
        if reason is not None and not reason.check(ConnectionDone) and self._error is None:
            self._error = f"server {self.address[0]}:{self.address[1]}: {reason.getErrorMessage()}"
            self.server_conn.error = self._error
        self.master.addons.trigger("serverdisconnect", self.server_conn)
        if not self._client_lost:
            self._close_other_side(self.client_transport)
        self._maybe_finish()

    def connection_lost(self, reason: object) -> None:
        """
        The client connection closed: a reset is an error; either way the
        server side is closed too.
        """
        self._client_lost = True
        # (The root hands the Failure it was given; ILayer says object.)
        reason = cast("Optional[Failure]", reason)
        if reason is not None and not reason.check(ConnectionDone) and self._error is None:
            self._error = f"client: {reason.getErrorMessage()}"
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None and not self._upstream_lost:
            self._close_other_side(_relay_transport(upstream))
        elif upstream is None and not self._connecting:
            self._upstream_lost = True
        self._maybe_finish()

    def _close_other_side(self, transport: _RelayTransport) -> None:
        # One side closed: stop the other side's transport pulling from it,
        # then close that side too (abruptly after an error).
        try:
            transport.unregisterProducer()
        except Exception:
            pass
        if self._error is not None:
            transport.abortConnection()
        else:
            transport.loseConnection()

    def _maybe_finish(self) -> None:
        if self._finished or not (self._client_lost and self._upstream_lost):
            return
        self._finished = True
        flow = self.flow
        if flow is None:
            return
        flow.live = False
        if self._error is not None and flow.error is None:
            flow.error = Error(self._error)
        self.master.addons.trigger("tcp_error" if flow.error is not None else "tcp_end", flow)


def _relay_transport(upstream: _TcpUpstream) -> _RelayTransport:
    # The server side's transport, once connected (see _RelayTransport).
    return cast(_RelayTransport, upstream.transport)
