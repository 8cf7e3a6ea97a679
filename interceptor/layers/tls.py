# -*- test-case-name: tests.e2e.test_tls -*-
"""
TLS interception of a tunnelled connection (after CONNECT).

The layer reads the client's ClientHello first (SNI, ALPN offers), opens
the upstream connection with the same SNI and ALPN offers, checks the
server's certificate, then mints a leaf certificate for the client covering
the SNI (or the IP address) and the names in the upstream's certificate,
and answers the client's handshake with the ALPN protocol the upstream
chose.  The decrypted bytes go to an HTTP/1 layer whose first upstream
connection is the one already open.

If the upstream cannot be reached or its certificate fails verification,
the client handshake still completes, and the first request gets a 502
naming the reason (and fires C{error}).

Hosts matching C{ignore_hosts} (or not matching a non-empty
C{allow_hosts}) are passed through untouched.
"""

from __future__ import annotations

import time
from typing import Any, Optional, cast
from weakref import WeakKeyDictionary

from twisted.internet.interfaces import IDelayedCall, IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.model.connection import ServerConnection
from interceptor.layers.contracts import ILayer
from interceptor.layers.http1 import Http1Layer, UpstreamProtocol
from interceptor.layers.http2 import Http2Layer, switch_to_h2
from interceptor.layers.relay import RelayLayer
from interceptor.transport.modes import matches_hosts
from interceptor.tls.handshake import (
    ClientHello,
    NotTLS,
    ServerTLS,
    certificate_names,
    handshake_failure,
    parse_client_hello,
    server_name_for,
)
from interceptor.tls.contexts import certstore_for
from interceptor.transport.fast.fasttls import tls_factory

__all__ = ["TlsLayer", "is_passthrough"]

_log = Logger(namespace="interceptor.tls")

_ALPN_HTTP1 = b"http/1.1"
# A ClientHello is at most 64 KiB of handshake data plus its record headers.
_MAX_HELLO_BYTES = (1 << 16) + 4096
_ALPN_H2 = b"h2"

# Hosts whose clients were told the proxy's certificate is not trusted, per
# proxy: said once per host (bounded, for a proxy that sees many).
_untrusted_warned: WeakKeyDictionary[Any, set[str]] = WeakKeyDictionary()
_MAX_WARNED_HOSTS = 10_000


def is_passthrough(options: Any, host: str, port: int, sni: Optional[str]) -> bool:
    """
    Whether a TLS connection to C{host:port} (with C{sni}) is passed
    through undecrypted, by C{ignore_hosts} and C{allow_hosts}.
    """
    if matches_hosts(options.ignore_hosts, host, port, sni):
        return True
    return bool(options.allow_hosts) and not matches_hosts(options.allow_hosts, host, port, sni)


@implementer(IHandshakeListener)
class _Decrypted(Protocol):
    """
    Receives the client's decrypted bytes from the TLS wrapper and hands
    them to the inner layer.
    """

    def __init__(self, owner: "TlsLayer") -> None:
        self.owner = owner

    def handshakeCompleted(self) -> None:
        """
        The client handshake finished.
        """
        self.owner.client_handshake_done()

    def dataReceived(self, data: bytes) -> None:
        """
        Decrypted client bytes.
        """
        self.owner.inner.data_received(data)

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        """
        The TLS connection ended.
        """
        self.owner.client_tls_ended(reason)
        inner = self.owner.inner
        if inner is not None:
            inner.connection_lost(reason)


@implementer(ILayer)
class TlsLayer:
    """
    Intercepts TLS on a tunnelled client connection to C{address}: the
    client's bytes go to the ClientHello parser, then (once the client TLS
    connection is set up) to the TLS protocol, which hands the decrypted
    bytes to C{inner}.

    @ivar address: The (host, port) the client asked to reach.
    @ivar client_hello: The parsed L{ClientHello}, once read.
    @ivar inner: The layer handling the decrypted bytes.
    """

    def __init__(self, root: Any, address: tuple[str, int]) -> None:
        self.root = root
        self.master = root.master
        self.address = address
        self.client_hello: Optional[ClientHello] = None
        self.inner: Any = None
        self.layer: Optional[ILayer] = None
        self.tls: Optional[TLSMemoryBIOProtocol] = None
        self._buffer = b""
        self._lost = False
        self._hello_timer: Optional[IDelayedCall] = None

    def __repr__(self) -> str:
        return f"<TlsLayer {self.address}>"

    def start(self) -> None:
        """
        Wait for the ClientHello, for at most C{read_timeout} seconds.
        """
        self._hello_timer = self.master.clock.callLater(
            self.master.options.read_timeout, self._hello_timed_out
        )

    def _hello_timed_out(self) -> None:
        self._hello_timer = None
        if self.client_hello is None and not self._lost:
            _log.info("{client}: no complete ClientHello within read_timeout; closing",
                      client=self.root.client_conn.address)
            self.root.transport.loseConnection()

    def _stop_hello_timer(self) -> None:
        if self._hello_timer is not None and self._hello_timer.active():
            self._hello_timer.cancel()
        self._hello_timer = None

    def data_received(self, data: bytes) -> None:
        """
        Collect the ClientHello, then intercept (or pass through); once the
        client TLS connection is set up, its bytes go to the TLS protocol.
        """
        if self.tls is not None:
            self.tls.dataReceived(data)
            return
        self._buffer += data
        if len(self._buffer) > _MAX_HELLO_BYTES:
            _log.info("{client}: no ClientHello in the first {n} bytes; closing",
                      client=self.root.client_conn.address, n=_MAX_HELLO_BYTES)
            self.root.transport.loseConnection()
            return
        if self.client_hello is not None:
            # Parsed already; the bytes wait for the client TLS connection.
            return
        try:
            hello = parse_client_hello(self._buffer)
        except NotTLS as e:
            _log.info("{client}: not a TLS ClientHello ({error}); closing",
                      client=self.root.client_conn.address, error=str(e))
            self.root.transport.loseConnection()
            return
        if hello is None:
            return
        self._stop_hello_timer()
        self.client_hello = hello
        self.root.client_conn.sni = hello.sni
        host, port = self.address
        if is_passthrough(self.master.options, host, port, hello.sni):
            relay = RelayLayer(self.root, self.address)
            buffered, self._buffer = self._buffer, b""
            self.root.switch_layer(relay, [buffered])
            return
        self._intercept(hello)

    def _intercept(self, hello: ClientHello) -> None:
        host, port = self.address
        self.root.gate.hold()
        mode = self.root.mode
        if mode.kind == "reverse":
            # The proxy stands for the reverse target: the server is reached
            # under the target's own name, over TLS only if the target says so.
            sni: Optional[str] = server_name_for(host)
            if mode.scheme != "https":
                self.inner = Http1Layer(self.root, transport=None, target=("http", host, port))
                alpn = _ALPN_HTTP1 if hello.alpn_protocols else None
                self._start_client_tls([hello.sni or host], alpn)
                return
        else:
            sni = server_name_for(hello.sni or host)
        self.inner = Http1Layer(self.root, transport=None, target=("https", host, port), sni=sni)
        options = self.master.options
        supported = (_ALPN_H2, _ALPN_HTTP1) if options.http2 else (_ALPN_HTTP1,)
        offers = [p for p in hello.alpn_protocols if p in supported] or (
            [_ALPN_HTTP1] if hello.alpn_protocols else []
        )
        if options.http2 and options.http2_translate:
            offers = [_ALPN_H2, _ALPN_HTTP1]
        server_conn = ServerConnection(self.address)
        upstream = UpstreamProtocol(self.inner, server_conn, tls=(sni, offers))
        self.inner.upstream = upstream
        d = self.master.addons.trigger("serverconnect", server_conn)
        d.addCallback(lambda _: upstream.connect())
        d.addCallbacks(self._upstream_ready, self._upstream_failed)
        d.addErrback(self._internal_error)

    def _internal_error(self, failure: Failure) -> None:
        _log.failure("Error intercepting TLS for {client}", failure, client=self.root.client_conn.address)
        self.root.transport.abortConnection()

    def _upstream_ready(self, upstream: UpstreamProtocol) -> None:
        hello = self.client_hello
        assert hello is not None  # (intercepting after it was read)
        server_conn = upstream.server_conn
        options = self.master.options
        names = [hello.sni or self.address[0]]
        if options.upstream_cert:
            for cert in server_conn.certificate_list[:1]:
                names += certificate_names(cert)
        client_h2 = options.http2 and _ALPN_H2 in hello.alpn_protocols
        upstream_h2 = server_conn.alpn == _ALPN_H2
        if client_h2 and (upstream_h2 or options.http2_translate):
            host, port = self.address
            layer = Http2Layer(self.root, ("https", host, port), sni=self.inner.sni)
            if upstream_h2:
                layer.upstream_h2 = switch_to_h2(upstream, layer)
            else:
                # Each translated stream opens an HTTP/1.1 connection of its own.
                upstream.close()
            self.inner = layer
            alpn: Optional[bytes] = _ALPN_H2
        else:
            if upstream_h2:
                self.inner.upstream = switch_to_h2(upstream, self.inner)
            alpn = server_conn.alpn if not upstream_h2 else _ALPN_HTTP1
        self._start_client_tls(names, alpn)

    def _upstream_failed(self, failure: Failure) -> None:
        # The client still gets a certificate and then a 502 naming the
        # reason, in the HTTP version it asked for first.
        hello = self.client_hello
        assert hello is not None  # (intercepting after it was read)
        error = failure.getErrorMessage()
        self.inner.upstream = None
        self.inner.upstream_error = error
        alpn = None
        for offered in hello.alpn_protocols:
            if offered == _ALPN_HTTP1 or (offered == _ALPN_H2 and self.master.options.http2):
                alpn = offered
                break
        if alpn == _ALPN_H2:
            host, port = self.address
            self.inner = Http2Layer(self.root, ("https", host, port), sni=self.inner.sni)
            self.inner.upstream_error = error
        self._start_client_tls([hello.sni or self.address[0]], alpn)

    def _start_client_tls(self, names: list[str], alpn: Optional[bytes]) -> None:
        if self._lost:
            return
        try:
            leaf = certstore_for(self.master).leaf_for(names)
        except Exception:
            _log.failure("Cannot make a certificate for {names}", names=names)
            self.root.transport.abortConnection()
            return
        creator = ServerTLS.for_leaf(leaf, alpn)
        factory = tls_factory(creator, False, None)
        self.tls = factory.protocol(factory, _Decrypted(self))
        self.tls.makeConnection(self.root.transport)
        self.inner.attach_transport(self.tls)
        buffered, self._buffer = self._buffer, b""
        self.tls.dataReceived(buffered)
        self.root.gate.release()

    def client_handshake_done(self) -> None:
        """
        Record what the client negotiated.
        """
        client_conn = self.root.client_conn
        client_conn.tls_established = True
        client_conn.timestamp_tls_setup = time.time()
        tls = self.tls
        assert tls is not None  # (its handshake is what completed)
        client_conn.alpn = tls.negotiatedProtocol

    def client_tls_ended(self, reason: Optional[Failure]) -> None:
        """
        The client's TLS connection ended: if its handshake failed, say
        why, in words a user can act on.
        """
        if self.root.client_conn.tls_established or reason is None:
            return
        failure = handshake_failure(reason.value)
        if failure is None:
            return
        host = self.inner.sni or self.address[0]
        if failure.untrusted:
            warned = _untrusted_warned.setdefault(self.master, set())
            if host in warned:
                return
            if len(warned) < _MAX_WARNED_HOSTS:
                warned.add(host)
            _log.warn(
                "{client}: client TLS handshake failed. The client does not trust the proxy's "
                "certificate for {host} ({alert}): install the proxy's CA in the client "
                "(http://interceptor.it/) or pass {host} through (ignore_hosts)",
                client=self.root.client_conn.address, host=host, alert=failure.alert,
            )
            return
        _log.info("{client}: client TLS handshake failed for {host}: {alert}",
                  client=self.root.client_conn.address, host=host, alert=failure.alert)

    def connection_lost(self, reason: object) -> None:
        """
        The client connection closed.
        """
        # (The root hands the Failure it was given; ILayer says object.)
        reason = cast(Failure, reason)
        self._lost = True
        self._stop_hello_timer()
        if self.tls is not None:
            self.tls.connectionLost(reason)
        elif self.inner is not None:
            self.inner.connection_lost(reason)
