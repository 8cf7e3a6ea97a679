# -*- test-case-name: tests.e2e.test_http2 -*-
"""
HTTP/2 peers on 127.0.0.1 for the end-to-end tests, written with the h2
package over Twisted TLS::

    pki = TestPKI(self.mktemp())                        # a CA and a 127.0.0.1 leaf
    server = await H2Server.start(self, pki, handler)   # h2 over TLS (ALPN h2)
    proxy = await start_proxy(self, confdir=self.mktemp(),
                              ssl_verify_upstream_trusted_ca=pki.ca_path)
    client = await H2ProxyClient.connect(self, proxy, server.port)  # CONNECT, TLS, h2
    response = await client.request("GET", "/x").done
    response.status, response.headers, response.body, response.trailers

L{TlsHttp1Server} is an HTTP/1.1-only twisted.web site over TLS, for the
translation tests; L{TlsTunnelClient} is a raw HTTP/1.1 client in a
CONNECT tunnel over TLS.  Every server records the ALPN protocols its clients
offered.  Everything started here is stopped in the test's cleanup, and
every wait is bounded.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
from typing import Any, Callable, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PushedStreamReceived,
    RemoteSettingsChanged,
    RequestReceived,
    ResponseReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from hyperframe.frame import GoAwayFrame
from OpenSSL import SSL, crypto
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLServerConnectionCreator
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from interceptor.tls.contexts import certstore_for
from tests.e2e.peers import LoopbackServer, RawClient, find_header, tracking_factory

__all__ = [
    "TestPKI",
    "H2Server",
    "H2ServerStream",
    "TlsHttp1Server",
    "H2ProxyClient",
    "H2cClient",
    "H2Response",
    "TlsTunnelClient",
    "proxy_ca_path",
]


def _config(client_side: bool) -> H2Configuration:
    return H2Configuration(client_side=client_side, header_encoding=None)


# -- certificates -------------------------------------------------------------


class TestPKI:
    """
    A CA and a leaf for C{127.0.0.1} and C{localhost}, with the CA written
    to C{ca_path} (to give the proxy as C{ssl_verify_upstream_trusted_ca}).
    """

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h2peers test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_path = os.path.join(directory, "test-ca.pem")
        with open(self.ca_path, "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        self.cert = crypto.X509.from_cryptography(leaf)
        self.key = crypto.PKey.from_cryptography_key(key)

    def server_context_factory(self, alpn: Sequence[bytes], offers: list,
                               names: Optional[list] = None) -> Any:
        """
        A context factory for C{listenSSL} choosing from C{alpn} (server
        preference order) and appending each client's offer list to
        C{offers} (and the server name it sent, or None, to C{names}).
        """
        return _ServerContextFactory(self, list(alpn), offers, names)


@implementer(IOpenSSLServerConnectionCreator)
class _ServerContextFactory:
    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self.getContext(), None)
        connection.set_app_data(tlsProtocol)
        return connection

    def __init__(self, pki: TestPKI, alpn: list[bytes], offers: list,
                 names: Optional[list] = None) -> None:
        self.pki = pki
        self.alpn = alpn
        self.offers = offers
        self.names = names
        self._context: Optional[SSL.Context] = None

    def getContext(self) -> SSL.Context:
        if self._context is None:
            ctx = SSL.Context(SSL.TLS_METHOD)
            ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
            ctx.use_certificate(self.pki.cert)
            ctx.use_privatekey(self.pki.key)

            def select(conn: SSL.Connection, protocols: list[bytes]) -> bytes:
                self.offers.append(list(protocols))
                if self.names is not None:
                    self.names.append(conn.get_servername())
                for proto in self.alpn:
                    if proto in protocols:
                        return proto
                return SSL.NO_OVERLAPPING_PROTOCOLS

            ctx.set_alpn_select_callback(select)
            self._context = ctx
        return self._context


def proxy_ca_path(proxy: Any) -> str:
    """
    The path of the proxy's CA certificate (created in its C{confdir} now
    if needed), for clients to trust.
    """
    path = certstore_for(proxy.master).ca_file(".pem")
    assert path is not None
    return path


# -- an h2 server ---------------------------------------------------------------


class H2ServerStream:
    """
    One request stream on L{H2Server}.

    @ivar headers: The request header block (pseudo-headers included).
    @ivar body: The request body received so far.
    @ivar trailers: The request trailers, or None.
    @ivar ended: Whether the client ended its side.
    @ivar reset_code: The RST_STREAM code received, or None.
    @ivar sent: Body bytes sent so far (within flow control).
    """

    def __init__(self, protocol: "H2ServerProtocol", stream_id: int, headers: list) -> None:
        self.protocol = protocol
        self.stream_id = stream_id
        self.headers = headers
        self.body = bytearray()
        self.trailers: Optional[list] = None
        self.ended = False
        self.reset_code: Optional[int] = None
        self.sent = 0
        self.finished = False
        self._out = bytearray()
        self._end = False
        self._trailers_out: Optional[list] = None

    def header(self, name: bytes) -> Optional[bytes]:
        """
        The first value of C{name} in the request header block.
        """
        return find_header(self.headers, name)

    @property
    def path(self) -> bytes:
        """
        The C{:path}.
        """
        return self.header(b":path") or b""

    def respond(
        self,
        status: int = 200,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        trailers: Optional[list] = None,
        end: bool = True,
    ) -> None:
        """
        Send the response head, then C{body} as the windows allow (and the
        trailers and the end of the stream when C{end}).
        """
        conn = self.protocol.conn
        fields = [(b":status", str(status).encode()), *headers]
        conn.send_headers(self.stream_id, fields, end_stream=end and not body and not trailers)
        if end and not body and not trailers:
            self.finished = True
            self.protocol.flush()
            return
        self.send(body, end=end, trailers=trailers)

    def send(self, data: bytes, end: bool = False, trailers: Optional[list] = None) -> None:
        """
        Queue body data (and the end of the stream).
        """
        self._out += data
        if end:
            self._end = True
            self._trailers_out = trailers
        self.pump()

    def pump(self) -> None:
        """
        Send queued data within the flow-control windows.
        """
        conn = self.protocol.conn
        try:
            while self._out:
                window = min(conn.local_flow_control_window(self.stream_id), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = bytes(self._out[:window])
                del self._out[:window]
                conn.send_data(self.stream_id, chunk)
                self.sent += len(chunk)
            if not self._out and self._end:
                self._end = False
                self.finished = True
                if self._trailers_out:
                    conn.send_headers(self.stream_id, self._trailers_out, end_stream=True)
                else:
                    conn.end_stream(self.stream_id)
        except H2Error:
            pass
        self.protocol.flush()

    def reset(self, code: int = ErrorCodes.INTERNAL_ERROR) -> None:
        """
        Reset the stream.
        """
        try:
            self.protocol.conn.reset_stream(self.stream_id, code)
        except H2Error:
            pass
        self.protocol.flush()

    def acknowledge(self) -> None:
        """
        Open the windows for everything received (for servers made with
        C{auto_ack=False}).
        """
        pending = self.protocol.unacked.pop(self.stream_id, 0)
        if pending:
            try:
                self.protocol.conn.acknowledge_received_data(pending, self.stream_id)
            except H2Error:
                pass
            self.protocol.flush()


@implementer(IHandshakeListener)
class H2ServerProtocol(Protocol):
    """
    The server side of one h2 connection of L{H2Server}.
    """

    def __init__(self, server: "H2Server") -> None:
        self.server = server
        self.conn = H2Connection(config=_config(False))
        self.streams: dict[int, H2ServerStream] = {}
        self.unacked: dict[int, int] = {}
        self.lost: Deferred = Deferred()
        self.closed = False
        self.negotiated: Optional[bytes] = None
        self.remote_settings_seen: Deferred = Deferred()
        self.settings_sent = 0
        self.settings_acked = 0
        # SETTINGS frames received (not acknowledgements).
        self.settings_frames = 0
        self.terminated: Optional[ConnectionTerminated] = None
        self.requests = 0
        # The last stream id of the GOAWAY sent by goaway_after, once sent.
        self.goaway_last: Optional[int] = None

    def connectionMade(self) -> None:
        self.server.connections.append(self)
        self.conn.initiate_connection()
        self.settings_sent = 1
        if self.server.settings:
            self.conn.update_settings(dict(self.server.settings))
            self.settings_sent = 2
        self.flush()

    def handshakeCompleted(self) -> None:
        self.negotiated = self.transport.negotiatedProtocol

    @property
    def settings_applied(self) -> bool:
        """
        Whether the proxy has acknowledged every SETTINGS frame we sent.
        """
        return self.settings_acked >= self.settings_sent

    def flush(self) -> None:
        """
        Send what h2 has queued.
        """
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.transport.write(data)
        last = self.goaway_last
        if last is not None and not self.closed and all(
            stream.finished or stream.reset_code is not None for stream in self.streams.values()
        ):
            # (What nginx does after its GOAWAY: the streams it kept are done.)
            self.transport.loseConnection()

    def _graceful_goaway(self, last: int) -> None:
        # Written past h2, which would refuse to send anything after it:
        # the streams up to last are still answered, the later ones ignored.
        self.flush()
        self.goaway_last = last
        self.transport.write(GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as e:
            self.server.errors.append(e)
            self.flush()
            self.transport.loseConnection()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                if self.goaway_last is not None and event.stream_id > self.goaway_last:
                    self.server.ignored += 1
                    continue
                self.requests += 1
                goaway_after = self.server.goaway_after
                if goaway_after is not None and self.requests == goaway_after:
                    if self.server.goaway_refuses:
                        self.server.ignored += 1
                        self._graceful_goaway(max(0, event.stream_id - 2))
                        continue
                    self._graceful_goaway(event.stream_id)
                stream = H2ServerStream(self, event.stream_id, list(event.headers))
                self.streams[event.stream_id] = stream
                self.server.streams.append(stream)
                if self.server.on_headers is not None:
                    self.server.on_headers(stream)
            elif isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.body += event.data
                if self.server.auto_ack:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                else:
                    self.unacked[event.stream_id] = (
                        self.unacked.get(event.stream_id, 0) + event.flow_controlled_length
                    )
            elif isinstance(event, TrailersReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.trailers = list(event.headers)
            elif isinstance(event, StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    self._ended(stream, _closed_later(events, event.stream_id))
            elif isinstance(event, StreamReset):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.reset_code = event.error_code
                    if self.server.on_reset is not None:
                        self.server.on_reset(stream)
            elif isinstance(event, WindowUpdated):
                for sid, stream in list(self.streams.items()):
                    if event.stream_id in (0, sid):
                        stream.pump()
            elif isinstance(event, RemoteSettingsChanged):
                self.settings_frames += 1
                if not self.remote_settings_seen.called:
                    self.remote_settings_seen.callback(self.conn.remote_settings)
            elif isinstance(event, SettingsAcknowledged):
                self.settings_acked += 1
            elif isinstance(event, ConnectionTerminated):
                self.terminated = event
        self.flush()

    def _ended(self, stream: H2ServerStream, closed_later: bool = False) -> None:
        stream.ended = True
        if self.server.handler is None:
            return
        try:
            self.server.handler(stream)
        except ProtocolError:
            # The same read also reset the stream or ended the connection
            # (GOAWAY), and h2 has taken in the whole read already, so it
            # refuses the answer; a real server's answer would be dropped.
            # (The proxy's writes arrive together like that when Twisted's
            # TLS transport gathers them: INTERCEPTOR_FAST_PATHS=0.)
            if not closed_later:
                raise

    def goaway(self, last_stream_id: Optional[int] = None, code: int = ErrorCodes.NO_ERROR) -> None:
        """
        Send GOAWAY.
        """
        self.conn.close_connection(error_code=code, last_stream_id=last_stream_id)
        self.flush()

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.lost.callback(None)


class H2Server(LoopbackServer):
    """
    An h2 server over TLS on 127.0.0.1 (ALPN C{alpn}, h2 only by default).

    C{handler(stream)} is called when a request is complete;
    C{on_headers(stream)} when its headers arrive; C{on_reset(stream)}
    when the client resets it.

    With C{goaway_after=N} each connection ends as nginx's does after
    C{keepalive_requests}: when the N-th request's headers arrive it sends
    GOAWAY(NO_ERROR) naming that stream as the last (the one before it
    with C{goaway_refuses}), answers the streams up to it, ignores the
    later ones (counted in C{ignored}) and closes once the kept ones are
    done.

    @ivar connections: Every L{H2ServerProtocol}, in order.
    @ivar streams: Every L{H2ServerStream}, in order.
    @ivar alpn_offers: The ALPN lists clients offered, one per handshake.
    """

    def __init__(
        self,
        handler: Optional[Callable[[H2ServerStream], None]],
        on_headers: Optional[Callable[[H2ServerStream], None]] = None,
        on_reset: Optional[Callable[[H2ServerStream], None]] = None,
        auto_ack: bool = True,
        settings: Optional[dict] = None,
        goaway_after: Optional[int] = None,
        goaway_refuses: bool = False,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.on_headers = on_headers
        self.on_reset = on_reset
        self.auto_ack = auto_ack
        self.settings = settings
        self.goaway_after = goaway_after
        self.goaway_refuses = goaway_refuses
        self.ignored = 0
        self.streams: list[H2ServerStream] = []
        self.alpn_offers: list = []
        self.errors: list = []

    @classmethod
    async def start(
        cls, testcase: Any, pki: TestPKI, handler: Optional[Callable] = None,
        alpn: Sequence[bytes] = (b"h2",), **kw: Any
    ) -> "H2Server":
        """
        Listen on a free port of 127.0.0.1; stopped in C{testcase}'s cleanup.
        """
        server = cls(handler, **kw)
        factory = Factory.forProtocol(lambda: H2ServerProtocol(server))
        server._listen(testcase, factory, pki.server_context_factory(alpn, server.alpn_offers))
        return server


def echo_handler(stream: H2ServerStream) -> None:
    """
    Answer with the request as JSON (headers, body, trailers).
    """
    data = {
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in stream.headers],
        "body": bytes(stream.body).decode("latin-1"),
        "trailers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in stream.trailers or []],
    }
    body = json.dumps(data).encode()
    stream.respond(
        200, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], body
    )


# -- an HTTP/1.1-only TLS server ------------------------------------------------


class _Echo1(Resource):
    """
    The request as JSON, sent chunked in two writes, with connection-specific
    response headers that must not reach an HTTP/2 client.
    """

    isLeaf = True

    def render(self, request: Any) -> Any:
        data = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "version": request.clientproto.decode(),
            "headers": [
                [n.decode("latin-1").lower(), v.decode("latin-1")]
                for n, vs in request.requestHeaders.getAllRawHeaders()
                for v in vs
            ],
            "body": request.content.read().decode("latin-1"),
        }
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Connection", b"keep-alive")
        request.setHeader(b"Keep-Alive", b"timeout=5")
        body = json.dumps(data).encode()
        request.write(body[:10])
        request.write(body[10:])
        request.finish()
        return NOT_DONE_YET


class TlsHttp1Server(LoopbackServer):
    """
    A twisted.web site speaking HTTP/1.1 only, over TLS on 127.0.0.1 (ALPN
    C{alpn}); every path answers with the request as JSON.

    @ivar alpn_offers: The ALPN lists clients offered.
    @ivar server_names: The server name (SNI) each client sent, or None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.site = Site(_Echo1())
        self.site.noisy = False
        self.site.log = lambda request: None
        self.alpn_offers: list = []
        self.server_names: list = []

    @property
    def protocols(self) -> list:
        """
        The accepted connections (the same list as C{connections}).
        """
        return self.connections

    @classmethod
    async def start(
        cls, testcase: Any, pki: TestPKI, alpn: Sequence[bytes] = (b"http/1.1",)
    ) -> "TlsHttp1Server":
        """
        Listen on a free port of 127.0.0.1; stopped in C{testcase}'s cleanup.
        """
        server = cls()
        wrapping = tracking_factory(server.site, server.connections)
        server._listen(testcase, wrapping,
                       pki.server_context_factory(alpn, server.alpn_offers, server.server_names))
        return server


# -- an h2 client through the proxy -----------------------------------------------


class H2Response:
    """
    What came back on one client stream.

    @ivar done: Fires with this object when the stream ends or is reset
        (or the connection is lost).
    @ivar ended: Whether the proxy ended the stream (END_STREAM).
    """

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.headers: list = []
        self.status = 0
        self.body = bytearray()
        self.trailers: Optional[list] = None
        self.reset_code: Optional[int] = None
        self.pushed = False
        self.ended = False
        self.done: Deferred = Deferred()
        self.unacked = 0

    def header(self, name: bytes) -> Optional[bytes]:
        """
        The first value of C{name} in the response header block.
        """
        return find_header(self.headers, name)

    def header_names(self) -> list[bytes]:
        """
        The names in the response header block.
        """
        return [n for n, _ in self.headers]

    def _finish(self) -> None:
        if not self.done.called:
            self.done.callback(self)


class _TlsTunnel:
    """
    The start of a client in a CONNECT tunnel through the proxy: CONNECT
    to C{address}, then TLS inside the tunnel, trusting C{ca_path} and
    offering C{alpn}; C{ready} fires once the handshake is done (or fails).

    @ivar negotiated: The ALPN protocol the proxy chose, or None.
    """

    address: tuple[str, int]
    ca_path: str
    alpn: list[bytes]
    ready: Deferred
    transport: Any
    negotiated: Optional[bytes] = None
    _head = b""
    _tunnel = False

    def _send_connect(self) -> None:
        host, port = self.address
        target = f"{host}:{port}".encode()
        self.transport.write(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))

    def _setting_up(self, data: bytes) -> bool:
        """
        Whether C{data} is the proxy's answer to CONNECT (starting TLS
        after a 200), not bytes from inside the tunnel.
        """
        if self._tunnel:
            return False
        self._head += data
        if b"\r\n\r\n" not in self._head:
            return True
        head = self._head.partition(b"\r\n\r\n")[0]
        status = head.split(b" ", 2)[1] if head.count(b" ") else b""
        if status != b"200":
            self.ready.errback(RuntimeError(f"CONNECT answered {head!r}"))
            self.transport.loseConnection()
            return True
        self._tunnel = True
        with open(self.ca_path, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        options = optionsForClientTLS(self.address[0], trustRoot=trust, acceptableProtocols=self.alpn)
        self.transport.startTLS(options)
        return True

    def _note_protocol(self) -> None:
        # After startTLS the TCP transport's protocol is the TLS wrapper.
        tls = getattr(self.transport, "protocol", self.transport)
        self.negotiated = getattr(tls, "negotiatedProtocol", None)


@implementer(IHandshakeListener)
class H2ProxyClient(_TlsTunnel, Protocol):
    """
    An h2 client that opens a CONNECT tunnel through the proxy, starts TLS
    in it (trusting the proxy's CA, offering C{alpn}) and speaks h2.

    @ivar negotiated: The ALPN protocol the proxy chose.
    @ivar terminated: The GOAWAY received, if any.
    @ivar pushes: PUSH_PROMISEs received (there should be none).
    """

    scheme = b"https"
    """The requests' C{:scheme}."""

    def __init__(self, address: tuple[str, int], ca_path: str, alpn: Sequence[bytes], auto_ack: bool) -> None:
        self.address = address
        self.ca_path = ca_path
        self.alpn = list(alpn)
        self.auto_ack = auto_ack
        self.conn = H2Connection(config=_config(True))
        self.ready: Deferred = Deferred()
        self.lost: Deferred = Deferred()
        self.closed = False
        self.negotiated: Optional[bytes] = None
        self.responses: dict[int, H2Response] = {}
        self.terminated: Optional[ConnectionTerminated] = None
        self.pushes: list = []
        self.sent: dict[int, int] = {}
        self.connector: Any = None
        self.protocol_error: Optional[Exception] = None
        # SETTINGS frames received (not acknowledgements).
        self.settings_frames = 0
        self._outputs: dict[int, list] = {}

    @classmethod
    async def connect(
        cls, testcase: Any, proxy: Any, port: int, host: str = "127.0.0.1",
        alpn: Sequence[bytes] = (b"h2", b"http/1.1"), auto_ack: bool = True, timeout: float = 5.0,
    ) -> "H2ProxyClient":
        """
        Connect through C{proxy} to C{host:port}; closed in C{testcase}'s
        cleanup.
        """
        client = cls((host, port), proxy_ca_path(proxy), alpn, auto_ack)
        factory = ClientFactory.forProtocol(lambda: client)
        factory.noisy = False
        connector = reactor.connectTCP("127.0.0.1", proxy.port_number, factory, timeout=timeout)
        testcase.addCleanup(client.close)

        def failed(reason: Any) -> None:
            if not client.ready.called:
                client.ready.errback(reason)

        factory.clientConnectionFailed = lambda c, reason: failed(reason)
        client.connector = connector
        d = client.ready
        d.addTimeout(timeout, reactor)
        return await d

    def connectionMade(self) -> None:
        self._send_connect()

    def dataReceived(self, data: bytes) -> None:
        if self._setting_up(data):
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as e:
            self.protocol_error = e
            self.transport.loseConnection()
            return
        for event in events:
            self._handle(event)
        self.flush()

    def handshakeCompleted(self) -> None:
        self._note_protocol()
        if self.negotiated == b"h2":
            self.conn.initiate_connection()
            self.flush()
        if not self.ready.called:
            self.ready.callback(self)

    def _handle(self, event: Any) -> None:
        if isinstance(event, ResponseReceived):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.headers = list(event.headers)
                response.status = int(dict(event.headers).get(b":status", b"0"))
                if event.stream_ended is not None:
                    response.ended = True
                    response._finish()
        elif isinstance(event, DataReceived):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.body += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif response is not None:
                response.unacked += event.flow_controlled_length
        elif isinstance(event, TrailersReceived):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.trailers = list(event.headers)
        elif isinstance(event, StreamEnded):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.ended = True
                response._finish()
        elif isinstance(event, StreamReset):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.reset_code = event.error_code
                response._finish()
        elif isinstance(event, PushedStreamReceived):
            self.pushes.append(event)
        elif isinstance(event, RemoteSettingsChanged):
            self.settings_frames += 1
        elif isinstance(event, WindowUpdated):
            for sid in list(self._outputs):
                if event.stream_id in (0, sid):
                    self._pump(sid)
        elif isinstance(event, ConnectionTerminated):
            self.terminated = event

    def flush(self) -> None:
        """
        Send what h2 has queued.
        """
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        trailers: Optional[list] = None,
        end: bool = True,
        authority: Optional[str] = None,
    ) -> H2Response:
        """
        Open a stream with a request; the body is sent within the windows.
        """
        sid = self.conn.get_next_available_stream_id()
        response = self.responses[sid] = H2Response(sid)
        fields = [
            (b":method", method.encode()),
            (b":scheme", self.scheme),
            (b":authority", (authority or f"{self.address[0]}:{self.address[1]}").encode()),
            (b":path", path.encode()),
            *headers,
        ]
        bodiless = end and not body and not trailers
        self.conn.send_headers(sid, fields, end_stream=bodiless)
        self.sent[sid] = 0
        if not bodiless:
            self._outputs[sid] = [bytearray(body), end, trailers]
            self._pump(sid)
        self.flush()
        return response

    def send_body(self, sid: int, data: bytes, end: bool = False, trailers: Optional[list] = None) -> None:
        """
        Queue more request body on stream C{sid}.
        """
        out = self._outputs.setdefault(sid, [bytearray(), False, None])
        out[0] += data
        if end:
            out[1], out[2] = True, trailers
        self._pump(sid)
        self.flush()

    def _pump(self, sid: int) -> None:
        out = self._outputs.get(sid)
        if out is None:
            return
        data, end, trailers = out
        try:
            while data:
                window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                if window <= 0:
                    return
                chunk = bytes(data[:window])
                del data[:window]
                self.conn.send_data(sid, chunk)
                self.sent[sid] += len(chunk)
            if end:
                del self._outputs[sid]
                if trailers:
                    self.conn.send_headers(sid, trailers, end_stream=True)
                else:
                    self.conn.end_stream(sid)
        except H2Error:
            self._outputs.pop(sid, None)

    def acknowledge(self, sid: int) -> None:
        """
        Open the windows for what stream C{sid} received (C{auto_ack=False}),
        and from now on acknowledge everything.
        """
        self.auto_ack = True
        response = self.responses[sid]
        amount, response.unacked = response.unacked, 0
        if amount:
            self.conn.acknowledge_received_data(amount, sid)
            self.flush()

    def reset(self, sid: int, code: int = ErrorCodes.CANCEL) -> None:
        """
        Reset stream C{sid}.
        """
        self._outputs.pop(sid, None)
        self.conn.reset_stream(sid, code)
        self.flush()

    def goaway(self, code: int = ErrorCodes.NO_ERROR) -> None:
        """
        Send GOAWAY.
        """
        self.conn.close_connection(error_code=code)
        self.flush()

    def close(self) -> Deferred:
        """
        Drop the connection; fires once it is closed.
        """
        if self.transport is None:
            if self.connector is not None:
                self.connector.disconnect()
            return _fired()
        if not self.closed:
            self.transport.abortConnection()
        return self.lost

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        for response in self.responses.values():
            response._finish()
        if not self.ready.called:
            self.ready.errback(reason)
        if not self.lost.called:
            self.lost.callback(None)


class H2cClient(H2ProxyClient):
    """
    An h2 client speaking HTTP/2 with prior knowledge (h2c) straight to the
    proxy over plain TCP (connect it with L{H2ProxyClient.connect}; the
    port names the server in its requests' C{:authority}).  With
    C{hold_after} set, only that many bytes of the preface go out at first,
    the rest with L{send_rest}.
    """

    _tunnel = True
    scheme = b"http"
    hold_after: Optional[int] = None

    def connectionMade(self) -> None:
        self.conn.initiate_connection()
        data = self.conn.data_to_send()
        if self.hold_after is not None:
            data, self._rest = data[:self.hold_after], data[self.hold_after:]
        self.transport.write(data)
        self.ready.callback(self)

    def send_rest(self) -> None:
        """
        Send the rest of a held preface.
        """
        self.transport.write(self._rest)


@implementer(IHandshakeListener)
class TlsTunnelClient(_TlsTunnel, RawClient):
    """
    A L{RawClient} speaking through a CONNECT tunnel of the proxy, over TLS
    (trusting the proxy's CA, offering C{alpn}): what it sends and
    C{received} are the bytes inside TLS, after the handshake.
    """

    def __init__(self, address: tuple[str, int], ca_path: str, alpn: Sequence[bytes]) -> None:
        super().__init__()
        self.address = address
        self.ca_path = ca_path
        self.alpn = list(alpn)
        self.ready: Deferred = Deferred()

    @classmethod
    async def tunnel(
        cls, testcase: Any, proxy: Any, port: int, host: str = "127.0.0.1",
        alpn: Sequence[bytes] = (b"http/1.1",), timeout: float = 5.0,
    ) -> "TlsTunnelClient":
        """
        CONNECT through C{proxy} to C{host:port} and complete the TLS
        handshake; aborted in C{testcase}'s cleanup.
        """
        client = cls((host, port), proxy_ca_path(proxy), alpn)
        factory = ClientFactory.forProtocol(lambda: client)
        factory.noisy = False
        await TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port_number, timeout=timeout).connect(factory)
        testcase.addCleanup(client.abort)
        return await bounded(client.ready, timeout)

    def connectionMade(self) -> None:
        self._send_connect()

    def dataReceived(self, data: bytes) -> None:
        if not self._setting_up(data):
            super().dataReceived(data)

    def handshakeCompleted(self) -> None:
        self._note_protocol()
        if not self.ready.called:
            self.ready.callback(self)

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        if not self.ready.called:
            self.ready.errback(reason)


def _fired() -> Deferred:
    d: Deferred = Deferred()
    d.callback(None)
    return d


def bounded(d: Deferred, timeout: float = 5.0) -> Deferred:
    """
    C{d}, failing with C{TimeoutError} after C{timeout} seconds.
    """
    return d.addTimeout(timeout, reactor)


def _closed_later(events: list, stream_id: int) -> bool:
    """
    Whether C{events} (one read) also reset C{stream_id} or ended the
    connection.
    """
    return any(
        isinstance(e, ConnectionTerminated)
        or (isinstance(e, StreamReset) and e.stream_id == stream_id)
        for e in events
    )
