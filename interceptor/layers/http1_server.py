# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_tls,tests.e2e.test_bodyrelay -*-
"""
HTTP/1 toward the server: the proxy's connections to servers, plain or TLS
(with certificate checks), reused across the keep-alive requests of one
client connection, parsing responses with httptools.  While it carries an
exchange the connection is that exchange's server side
(L{interceptor.layers.contracts.IServerSide})::

    server = Http1ServerConnection(owner, ServerConnection(("example.org", 443)),
                                   tls=("example.org", [b"http/1.1"]))
    d = server.connect()                   # fires once connected (and verified)
    side = server.open_exchange(exchange)  # then side.send_request(...)

Large unchanged bodies are counted through without the parser, and between
plain sockets moved through one reused buffer
(L{interceptor.layers.http1_counted_body}).  What the connection uses of its
transports is typed in L{interceptor.layers.server_transport}.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, cast

import httptools
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener, IProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.transport.flowcontrol import AckValve
from interceptor.model.connection import Address, ServerConnection
from interceptor.transport.fast.fastwrite import writer_for
from interceptor.model.http import Headers, Response
from interceptor.layers.contracts import IServerConnection, IServerOwner, IServerSide
from interceptor.layers.http1_counted_body import CountedBody
from interceptor.layers.http1_framing import (
    _BodyWriter,
    _content_length,
    _failed,
    _Framing,
    _head_bytes,
    _is_chunked,
    _no_delay,
    _prepare_buffered,
    _prepare_streamed,
    _write_message,
    asks_to_upgrade,
)
from interceptor.layers.http2_headers import http1_headers_for
from interceptor.layers.server_transport import ServerTLSTransport, ServerTransport
from interceptor.transport.connect import open_connection
from interceptor.transport.paced import PACE_ABOVE, PacedWrite
from interceptor.transport.readgate import ReadGate
from interceptor.tls.handshake import UpstreamTLS, check_hostname
from interceptor.tls.contexts import UpstreamTLSError, upstream_contexts
from interceptor.transport.watchdog import Watchdog

if TYPE_CHECKING:
    from interceptor.layers.exchange import HttpExchange
    from interceptor.model.http import Request

__all__ = ["Http1ServerConnection", "UpstreamProtocol"]

_log = Logger(namespace="interceptor.http1")


class ResponseTooLarge(Exception):
    """
    Raised from a parser callback: the response head is over
    C{max_header_size}.
    """


@implementer(IHandshakeListener, IServerConnection, IServerSide)
class Http1ServerConnection(Protocol):
    """
    A connection from the proxy to an HTTP/1 server, reused across the
    keep-alive requests of one client connection, and the server side of
    the exchange it carries.

    @ivar owner: The L{IServerOwner} (the client layer) it serves.
    @ivar exchange: The L{HttpExchange} being answered, or None when idle.
    @ivar gate: The L{interceptor.transport.readgate.ReadGate} of this
        transport (also the exchange's C{read_gate}).
    """

    absolute_form = False
    """Requests go out in absolute-form (to an upstream proxy, upstream mode)."""

    connected: bool
    """Whether the connection is up (True/False here; Twisted declares an int)."""

    def __init__(
        self,
        owner: IServerOwner,
        server_conn: ServerConnection,
        tls: Optional[tuple[Optional[str], Sequence[bytes]]] = None,
        single_use: bool = False,
    ) -> None:
        self.owner = owner
        self.tls = tls
        self.single_use = single_use
        self.verify_error: Optional[str] = None
        self._ready: Optional[Deferred[Http1ServerConnection]] = None
        self._paired = False
        # A big buffered request body being written a slice at a time.
        self._paced: Optional[PacedWrite] = None
        self.master = owner.master
        self.server_conn = server_conn
        address = server_conn.address
        if address is None:
            raise ValueError("a server connection needs the address to connect to")
        self.address: Address = address
        self.exchange: Optional[HttpExchange] = None
        self.connected = False
        self.closing = False
        self.gate: Any = None
        self._parser = httptools.HttpResponseParser(self)
        self._fields: list[tuple[bytes, bytes]] = []
        self._trailers: Optional[list[tuple[bytes, bytes]]] = None
        self._reason = b""
        self._head_size = 0
        self._max_header_size = owner.master.options.max_header_size
        self._head_only: Optional[bytearray] = None
        self._head_parser: Any = None
        self._counted_body = CountedBody(self._moved, self._counted_through)
        self._request_writer: Optional[_BodyWriter] = None
        self._valve: Optional[AckValve] = None
        self._framed = False
        self._keep_alive = True
        # Where the server's bytes go instead of the parser once the
        # connection switched protocols (a list while the switch waits).
        self._sink: Optional[Callable[[bytes], Any]] = None
        self._relay: Any = None
        self._connecting: Optional[Deferred[IProtocol]] = None
        self.watchdog = Watchdog.for_connection(self.master, self._timeout, self._timed_out)

    def __repr__(self) -> str:
        return f"<Http1ServerConnection {self.address}>"

    @property
    def server_transport(self) -> ServerTransport:
        """
        The transport, once connected.  (Twisted types a protocol's
        transport as an ITransport, or None before the connection is made.)
        """
        return cast(ServerTransport, self.transport)

    @property
    def tls_transport(self) -> ServerTLSTransport:
        """
        The TLS transport, once connected with C{self.tls}.
        """
        return cast(ServerTLSTransport, self.transport)

    @property
    def read_gate(self) -> Any:
        """
        The read gate of this connection (held while response hooks run).
        """
        return self.gate

    @property
    def reuse_key(self) -> tuple[str, Optional[str]]:
        """
        How this connection reaches its server: C{("https", sni)} or
        C{("http", None)}.
        """
        if self.tls is not None:
            return ("https", self.tls[0])
        return ("http", None)

    def idle(self) -> bool:
        """
        Whether the connection is open and free for a new exchange (and
        not still writing a big request body).
        """
        return self.connected and self.exchange is None and not self.closing and self._paced is None

    @property
    def client_gate(self) -> Optional[ReadGate]:
        """
        This connection's gate while it produces for the client's transport.
        """
        return self.gate if self._paired else None

    def release(self) -> None:
        """
        The client layer closes: stop pairing, and close unless an exchange
        still uses the connection.
        """
        self.unpair()
        if self.exchange is None:
            self.close()

    def connect(self) -> Deferred[Http1ServerConnection]:
        """
        Open the connection (with TLS when C{self.tls} is set, checking the
        server's certificate unless C{ssl_insecure}).

        @return: A Deferred firing with this protocol once it is ready to
            carry a request: connected, and for TLS handshaken and verified.
        """
        if self.closing:
            return _failed(ConnectionError("the client went away before the server connection"))
        ready = self._ready = Deferred()
        self._connecting = open_connection(self.master, self.address, self, self._tls_creator())
        # (A connection that fails at once, e.g. to an invalid host name,
        # fails ready, and clears self._ready, right here.)
        self._connecting.addErrback(self._not_ready)
        return ready

    def _tls_creator(self) -> Any:
        if self.tls is None:
            return None
        sni, alpn = self.tls
        options = self.master.options
        contexts = upstream_contexts(self.master)
        context = contexts.get(options.ssl_insecure, options.ssl_verify_upstream_trusted_ca, alpn)
        self.server_conn.sni = sni
        return UpstreamTLS(context, sni)

    def _not_ready(self, failure: Failure) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.errback(failure)

    def connectionMade(self) -> None:
        """
        TCP is up; for TLS the handshake goes on.
        """
        transport = self.server_transport
        if self.closing:
            transport.abortConnection()
            return
        self.connected = True
        now = time.time()
        self.server_conn.timestamp_start = self.server_conn.timestamp_tcp_setup = now
        peer = transport.getPeer()
        self.server_conn.peername = (peer.host, peer.port)
        host = transport.getHost()
        self.server_conn.sockname = (host.host, host.port)
        raw = self._raw_transport()
        self.gate = ReadGate(raw)
        self.write = writer_for(self.transport)
        _no_delay(raw)
        self.watchdog.start()
        if self.tls is None:
            self._became_ready()

    def handshakeCompleted(self) -> None:
        """
        The upstream TLS handshake is done: check the certificate.
        """
        server_conn = self.server_conn
        transport = self.tls_transport
        server_conn.tls_established = True
        server_conn.timestamp_tls_setup = time.time()
        server_conn.alpn = transport.negotiatedProtocol
        peer = transport.getPeerCertificate()
        cert = peer.to_cryptography() if peer is not None else None
        server_conn.certificate_list = [cert] if cert is not None else []
        problem = None
        if not self.master.options.ssl_insecure:
            sni = self.tls[0] if self.tls is not None else None
            name = sni or self.address[0]
            if self.verify_error is not None:
                problem = self.verify_error
            elif cert is None:
                problem = "no certificate"
            else:
                problem = check_hostname(cert, name)
        if problem is not None:
            message = f"Certificate verification failed for {self.address[0]}: {problem}"
            self.abort()
            self._not_ready(Failure(UpstreamTLSError(message)))
            return
        self._became_ready()

    def _became_ready(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.callback(self)

    def unpair(self) -> None:
        """
        Stop producing for the client transport (it may be closing: a TLS
        transport shuts down only once no producer is registered).
        """
        if self._paired:
            self._paired = False
            if self.owner.client_conn.timestamp_end is None:
                self.owner.pairing_transport.unregisterProducer()
            # (Both ways: this TLS transport too closes only without one;
            # and an upstream replaced while full must not leave the client
            # unread.)
            if self.transport is not None and self.connected:
                self.server_transport.unregisterProducer()
            self.owner.gate.resumeProducing()

    def write_body(self, data: bytes) -> None:
        """
        Send a piece of a streamed request body: handing the server part of
        a request is progress too (a server waiting for a slowly streamed
        body is not silent), so its read timeout starts again.
        """
        self.watchdog.touch()
        self.write(data)

    def when_drained(self, callback: Callable[[], None]) -> None:
        """
        Run C{callback} once this connection's write buffer has room (now,
        if it has).  For a connection carrying one HTTP/2 client stream,
        never paired with a client transport: it paces that stream's
        window by what the server takes.
        """
        if self._valve is None:
            if self.transport is None or not self.connected:
                callback()
                return
            self._valve = AckValve(self.transport)
        self._valve.run(callback)

    def _detach_valve(self) -> None:
        valve, self._valve = self._valve, None
        if valve is not None:
            valve.detach()

    def _pair(self) -> None:
        # Each side's read gate produces for the other side's transport.
        client = self.owner.pairing_transport
        if not self._paired and client is not None:
            self._paired = True
            self.server_transport.registerProducer(self.owner.gate, True)
            client.registerProducer(self.gate, True)

    def open_exchange(self, exchange: HttpExchange) -> IServerSide:
        """
        C{exchange}'s request is about to be sent on this connection: this
        connection is its server side until the response is complete.
        """
        self.exchange = exchange
        if not self._paired:
            self._pair()
        self._head_only = bytearray() if exchange.flow.request.method == "HEAD" else None
        self.watchdog.touch()
        return self

    def done(self, broken: bool) -> None:
        """
        The exchange is over before its response completed here; a broken
        one closes the connection.
        """
        if self.exchange is not None:
            self.exchange = None
            if broken:
                self.abort()

    # -- sending the request ------------------------------------------------

    def _request_line(self, request: Request) -> str:
        version = request.http_version
        if version.startswith("HTTP/2"):
            # An HTTP/2 client's request (translation).
            http1_headers_for(request)
            version = "HTTP/1.1"
        target = request.url if self.absolute_form else request.path
        return f"{request.method} {target} {version}"

    def send_request(self, request: Request, body: bytes) -> None:
        """
        Send a whole buffered request.
        """
        line = self._request_line(request)
        framing = _prepare_buffered(request, body, False, True)
        head = _head_bytes(line, request.headers)
        if len(body) > PACE_ABOVE and framing == _Framing.LENGTH:
            # Paired, the client's gate produces for this transport.
            self.write(head)
            self._paced = PacedWrite(
                self.write, body, self._paced_out,
                gate=self.owner.gate if self._paired else None, transport=self.transport,
            )
            self._paced.start()
            return
        _write_message(self.write, head, body, framing, request.trailers)

    def _paced_out(self) -> None:
        self._paced = None

    def send_request_head(self, request: Request) -> None:
        """
        Send a streamed request's head; its body follows.
        """
        line = self._request_line(request)
        framing = _prepare_streamed(request, True, callable(request.stream))
        if framing == _Framing.CHUNKED and request.http_version == "HTTP/1.0":
            # HTTP/1.0 has no chunked framing and a request body cannot be
            # close-delimited: this hop speaks HTTP/1.1.
            line = line.rsplit(" ", 1)[0] + " HTTP/1.1"
        self.write(_head_bytes(line, request.headers))
        self._request_writer = _BodyWriter(self.write_body, framing, None)

    def send_request_data(self, data: bytes, ack: Callable[[], None]) -> None:
        """
        Send a piece of a streamed request body.  Paired with an HTTP/1
        client, backpressure is the transports' (C{ack} runs at once);
        otherwise C{ack} waits for this connection's write buffer to drain.
        """
        # (Set by send_request_head, before the body.)
        cast(_BodyWriter, self._request_writer).write(data)
        if self._paired:
            ack()
        else:
            self.when_drained(ack)

    def end_request(self, request: Request) -> None:
        """
        The streamed request is complete: its end (and trailers, chunked).
        """
        writer, self._request_writer = self._request_writer, None
        if writer is not None:
            writer.finish(request.trailers)

    # -- parsing ----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """
        Parse a piece of the response.
        """
        sink = self._sink
        if sink is not None:
            sink(data)
            return
        self.watchdog.last = self.master.clock.seconds()
        exchange = self.exchange
        if exchange is None:
            if data.strip():
                _log.info("{server}: unexpected data from an idle upstream; closing",
                          server=self.address)
            self.abort()
            return
        counted = self._counted_body
        if counted.left:
            return counted.received(exchange, data)
        head_only = self._head_only
        if head_only is not None:
            return self._head_only_received(head_only, data)
        try:
            self._parser.feed_data(data)
            if counted.wanted:
                self._count_rest()
        except httptools.HttpParserUpgrade as e:
            exchange = self.exchange
            if exchange is None or exchange.flow.response is None:
                self._invalid("upgrade without a 101 response")
            elif not asks_to_upgrade(exchange.flow.request.headers):
                self._invalid("101 Switching Protocols to a request that did not ask to upgrade")
            else:
                self.exchange = None
                # Bytes after the 101 wait for the switch (responseheaders
                # hooks may take time; TLS may deliver more records meanwhile).
                after: list[bytes] = [data[e.args[0]:]]
                self._sink = after.append
                exchange.switch_protocols(after)
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__ or e
            if not isinstance(cause, ResponseTooLarge):
                _log.failure("Error handling an upstream response", Failure(cause))
            self._invalid(str(cause))
        except httptools.HttpParserError as e:
            self._invalid(str(e))

    def relay_body(self, direct_to: Any) -> None:
        """
        The exchange takes this response's Content-Length body as it is:
        once the current piece is parsed, count the rest through instead of
        parsing it, reading in bigger pieces, and between plain sockets
        straight to C{direct_to} when given.
        """
        self._counted_body.want(direct_to)

    def _count_rest(self) -> None:
        # (See CountedBody.start.)
        raw = self._raw_transport()
        if self._counted_body.start(self.exchange, self._parser, self.transport, raw):
            self._parser = httptools.HttpResponseParser(self)

    def _raw_transport(self) -> Any:
        # The TCP connection itself (beneath TLS, when there is TLS): its
        # bufferSize is how much one read takes.
        return self.tls_transport.transport if self.tls is not None else self.transport

    def _moved(self, count: int) -> None:
        self.watchdog.last = self.master.clock.seconds()
        if self.exchange is not None:
            self.exchange.response_size += count

    def _counted_through(self, keep_alive: bool, rest: bytes) -> None:
        # The counted body is complete; rest: what the server sent after it.
        self._framed = True
        self.on_message_complete_with(keep_alive)
        if rest and self.connected:
            self.dataReceived(rest)

    def _head_only_received(self, buf: bytearray, data: bytes) -> None:
        """
        A response to HEAD: parse its head alone (C{buf}: what came of it
        so far); it has no body whatever its Content-Length says.
        """
        start = max(len(buf) - 3, 0)
        buf += data
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buf) > self._max_header_size:
                self._invalid(f"the response header block exceeds {self._max_header_size} bytes")
            return
        head, rest = bytes(buf[: end + 4]), buf[end + 4 :]
        self._head_only = fresh = bytearray()
        parser = self._head_parser = httptools.HttpResponseParser(self)
        try:
            parser.feed_data(head)
        except httptools.HttpParserError as e:
            self._invalid(str(e))
            return
        finally:
            self._head_parser = None
        status = parser.get_status_code()
        if 100 <= status < 200:
            if rest:
                self._head_only_received(fresh, bytes(rest))
            return
        self._head_only = None
        self._framed = True
        self.on_message_complete_with(parser.should_keep_alive())

    def _invalid(self, detail: str) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.fail(f"Invalid response from {self.address[0]}:{self.address[1]}: {detail}", 502)
        self.abort()

    def on_message_begin(self) -> None:
        """
        httptools: a response starts.
        """
        self._fields = []
        self._trailers = None
        self._reason = b""
        self._head_size = 0
        self._framed = False

    def on_status(self, status: bytes) -> None:
        """
        httptools: the reason phrase (possibly in pieces).
        """
        self._reason += status
        self._count_head(len(status))

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self._max_header_size:
            raise ResponseTooLarge(f"the response header block exceeds {self._max_header_size} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        """
        httptools: one header field.
        """
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_header_size:
            self._count_head(0)
        if self._trailers is not None:
            # After a chunked body: a trailer field, never a header.
            self._trailers.append((name, value))
            return
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        """
        httptools: the response head is complete.
        """
        parser = self._head_parser or self._parser
        status = parser.get_status_code()
        exchange = self.exchange
        self._trailers = []
        if (100 <= status < 200 and status != 101) or exchange is None:
            return
        response = Response(
            "HTTP/" + parser.get_http_version(),
            status,
            self._reason.decode("latin-1"),
            Headers(self._fields),
            None,
            timestamp_start=time.time(),
        )
        if status == 101:
            # (No body follows a 101: its content is empty, as mitmproxy's,
            # so that a response hook may read it.)
            response.load_body(b"")
            exchange.flow.response = response
            return
        self._framed = (
            _content_length(response.headers) is not None or _is_chunked(response.headers)
        )
        exchange.response_head(response)

    def on_body(self, data: bytes) -> None:
        """
        httptools: a piece of the response body.
        """
        exchange = self.exchange
        if exchange is not None:
            exchange.response_data(data)

    def on_message_complete(self) -> None:
        """
        httptools: the response is complete.
        """
        self._counted_body.wanted = False
        if self._head_only is not None:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return
        self._framed = True
        exchange = self.exchange
        if self._trailers and exchange is not None and exchange.flow.response is not None:
            exchange.flow.response.trailers = Headers(self._trailers)
        self.on_message_complete_with(self._parser.should_keep_alive())

    def on_message_complete_with(self, keep_alive: bool) -> None:
        """
        The response is complete: the server's part of the exchange is over
        (its closing or silence from now on, while the response hooks run,
        is no fault of the exchange), and the connection is free.
        """
        exchange = self.exchange
        if exchange is None or exchange.flow.response is None:
            return
        self.exchange = None
        exchange.server_released(self)
        if not keep_alive or self.single_use:
            self.close()
        exchange.response_end()

    # -- life cycle -------------------------------------------------------

    def _timeout(self) -> Optional[float]:
        # While a request is outstanding, and during the TLS handshake.
        read_timeout: float = self.master.options.read_timeout
        if self._ready is not None:
            return read_timeout
        if self.exchange is None:
            return None
        if self._held_back():
            # The client is not taking the response: the server's silence
            # is ours, not its own.  Counting starts again when it resumes.
            self.watchdog.touch()
            return None
        return read_timeout

    def _held_back(self) -> bool:
        relay = self._counted_body.relay
        if relay is not None:
            return relay.stalled
        return self.gate is not None and self.gate.holds > 0

    def _timed_out(self, silence: float) -> None:
        exchange = self.exchange
        if self._ready is not None:
            self._not_ready(Failure(TimeoutError(
                f"{self.address[0]}:{self.address[1]} did not complete the TLS handshake "
                f"within {silence:.1f} s (timed out)"
            )))
        elif exchange is not None:
            exchange.fail(
                f"{self.address[0]}:{self.address[1]} sent nothing for {silence:.1f} s "
                "(read timeout)",
                504,
            )
        self.abort()

    def relay_to(self, transport: Any) -> None:
        """
        From now on, relay every byte from upstream to C{transport}.
        """
        self._relay = transport
        self.watchdog.stop()
        self._sink = transport.write

    def close(self) -> None:
        """
        Close once pending writes are sent.
        """
        if not self.closing:
            self.closing = True
            self._detach_valve()
            self.unpair()
            if self.transport is not None:
                self.transport.loseConnection()
            elif self._connecting is not None:
                self._connecting.cancel()

    def abort(self) -> None:
        """
        Drop the connection now.
        """
        self.closing = True
        self._detach_valve()
        self.unpair()
        if self.transport is not None:
            if self.connected:
                self.server_transport.abortConnection()
        elif self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        """
        The upstream closed: finish a close-delimited body, or fail the
        exchange in progress; fire C{serverdisconnect}.
        """
        self.connected = False
        self.watchdog.stop()
        self._detach_valve()
        if self._paced is not None:
            self._paced.stop()
            self._paced = None
        self._counted_body.abandon()
        self.server_conn.timestamp_end = time.time()
        if self._ready is not None:
            detail = reason.getErrorMessage() if reason is not None else "connection closed"
            self._not_ready(Failure(ConnectionError(
                f"{self.address[0]}:{self.address[1]} closed the connection during "
                f"the TLS handshake ({detail})"
            )))
        self.owner.server_lost(self)
        if self._relay is not None:
            self._relay.loseConnection()
        elif self._paired:
            self.unpair()
        exchange = self.exchange
        if exchange is not None and not exchange.over:
            response = exchange.flow.response
            if response is not None and not self._framed and self._head_only is None:
                # A close-delimited body ends here.
                self.on_message_complete_with(False)
            else:
                self.exchange = None
                what = "before responding" if response is None else "in the middle of the response"
                exchange.fail(
                    f"{self.address[0]}:{self.address[1]} closed the connection {what}"
                    f" ({reason.getErrorMessage() if reason is not None else 'closed'})",
                    502,
                )
        self.master.addons.trigger("serverdisconnect", self.server_conn)



UpstreamProtocol = Http1ServerConnection
"""The name this class had before (kept for addons that import it)."""
