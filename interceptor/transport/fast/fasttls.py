# -*- test-case-name: tests.test_fasttls,tests.e2e.test_tls -*-
"""
Twisted's memory-BIO TLS protocol with less Python between the socket and
OpenSSL: the proxy runs two TLS connections per intercepted client, and
every request and response crosses four TLS record operations.

    factory = tls_factory(creator, isClient, wrappedFactory)

L{tls_factory} is the entry point: a L{FastTLSFactory}, or Twisted's own
L{TLSMemoryBIOFactory} (and protocol) when the fast paths are off
(L{interceptor.transport.fast.enabled}) or this Twisted makes a
protocol's OpenSSL connection in a way this module does not know.

L{FastTLSProtocol} is a L{TLSMemoryBIOProtocol}; it changes how, not what:

1. C{makeConnection} declares the transport's interfaces once per
   transport class (Twisted calls C{directlyProvides} per connection, and
   zope recomputes the resolution order each time: ~6 % of the proxy's CPU
   per new intercepted connection), and sends encrypted records to a TCP
   transport through the direct writer of
   L{interceptor.transport.fast.fastwrite}.
2. Once the handshake is done, records are read and written with
   OpenSSL's C{SSL_read}/C{SSL_write}/C{BIO_read}/C{BIO_write} through
   pyOpenSSL's own bindings, into one reused buffer, and "nothing more to
   read" is a return code rather than a raised C{WantReadError}: pyOpenSSL
   allocates a buffer and raises an exception on most calls (9.8 against
   2.9 µs per encrypt-and-decrypt of a 200-byte message, measured in a
   loop; an HTTPS keep-alive request through the proxy cost 112 µs of
   CPU, against 65 µs in plain HTTP, and 86-99 µs with this path).
   Anything but success or "want read" goes back to Twisted's
   own code, which calls pyOpenSSL again and raises the proper error, so
   errors, alerts and shutdown behave exactly as in Twisted.

If a pyOpenSSL release no longer has those bindings, the protocol falls
back to Twisted's record path (L{FAST_RECORDS} is then False).

Twisted's factory makes each protocol's OpenSSL connection through a
private name: C{_creatorCallable} (an attribute holding a function of the
protocol) in current releases, the method C{_createConnection} in 24.7 and
24.10.  Which one this Twisted has is found once, at import; with neither,
L{tls_factory} gives Twisted's own factory.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer, providedBy

from interceptor.transport.fast import enabled
from interceptor.transport.fast.fastwrite import writer_for

__all__ = ["FastTLSProtocol", "FastTLSFactory", "FAST_RECORDS", "FAST_SETUP", "tls_factory"]


@implementer(IOpenSSLServerConnectionCreator)
class _ProbeCreator:
    """
    A connection creator that is never asked for a connection: only a
    factory's constructor sees it.
    """

    def serverConnectionForTLS(self, protocol: Any) -> Any:  # pragma: no cover
        raise NotImplementedError()


def _connection_maker() -> Optional[Callable[[Any, Any], Any]]:
    """
    How this Twisted's L{TLSMemoryBIOFactory} makes a protocol's OpenSSL
    connection, as a function of (factory, protocol); None if neither of
    the known private names is there.
    """
    try:
        probe = TLSMemoryBIOFactory(_ProbeCreator(), False, Factory(), clock=Clock())
    except Exception:  # pragma: no cover - a constructor this code does not know
        return None
    if callable(getattr(probe, "_creatorCallable", None)):
        # Twisted 25 and later.
        return lambda factory, protocol: factory._creatorCallable(protocol)
    if callable(getattr(probe, "_createConnection", None)):
        # Twisted 24.7 and 24.10.
        return lambda factory, protocol: factory._createConnection(protocol)
    return None  # pragma: no cover


_make_connection = _connection_maker()

FAST_SETUP = _make_connection is not None
"""Whether L{FastTLSProtocol} knows how this Twisted makes a protocol's
OpenSSL connection (else L{tls_factory} gives Twisted's own factory)."""

_FUNCTIONS = ("SSL_read", "SSL_write", "BIO_read", "BIO_write", "SSL_get_error")


def _bindings() -> Optional[Any]:
    """
    pyOpenSSL's cffi bindings (its C{_util.lib}), when its connections
    expose the OpenSSL handles the record path needs; else None.
    """
    try:
        from OpenSSL import SSL
        from OpenSSL._util import lib
    except ImportError:  # pragma: no cover - a pyOpenSSL without them
        return None
    probe = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    if not all(hasattr(probe, a) for a in ("_ssl", "_into_ssl", "_from_ssl")) or not all(
        hasattr(lib, f) for f in _FUNCTIONS
    ):
        return None  # pragma: no cover
    return lib


_lib = _bindings()

FAST_RECORDS = _lib is not None
"""Whether records go through OpenSSL directly (see the module docstring)."""

if _lib is not None:
    from OpenSSL._util import ffi as _ffi

    _SSL_read = _lib.SSL_read
    _SSL_write = _lib.SSL_write
    _BIO_read = _lib.BIO_read
    _BIO_write = _lib.BIO_write
    _SSL_get_error = _lib.SSL_get_error
    _WANT_READ = _lib.SSL_ERROR_WANT_READ
    # Reads land here and are copied out at once; the reactor is one thread.
    _BUFFER_SIZE = 1 << 16
    _buffer = _ffi.new("char[]", _BUFFER_SIZE)
    _bytes_of = _ffi.buffer
    _from_buffer = _ffi.from_buffer
# Encrypted records are written to the transport every this many bytes of
# a big write (four full TLS records).
_WRITE_CHUNK = 1 << 16


class FastTLSProtocol(TLSMemoryBIOProtocol):
    """
    A L{TLSMemoryBIOProtocol} with cheaper set-up and record handling (see
    the module docstring).
    """

    _ssl: Any = None
    _send: Callable[[bytes], None]

    def makeConnection(self, transport: Any) -> None:
        """
        As L{TLSMemoryBIOProtocol.makeConnection}, without the per-connection
        interface declarations.
        """
        if _make_connection is None:  # pragma: no cover - see FAST_SETUP
            TLSMemoryBIOProtocol.makeConnection(self, transport)
            return
        self.__class__ = _class_for(type(transport), providedBy(transport))
        # Encrypted records go straight to a TCP socket when nothing is
        # buffered (see interceptor.transport.fast.fastwrite).
        self._send = writer_for(transport)
        self._tlsConnection = _make_connection(self.factory, self)
        self._appSendBuffer = []
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        if self._connectWrapped:
            ProtocolWrapper.makeConnection(self, transport)
        self._checkHandshakeStatus()

    def _checkHandshakeStatus(self) -> None:
        TLSMemoryBIOProtocol._checkHandshakeStatus(self)
        if self._handshakeDone and FAST_RECORDS and self._ssl is None:
            connection = self._tlsConnection
            self._ssl = connection._ssl
            self._into = connection._into_ssl
            self._from = connection._from_ssl

    def dataReceived(self, data: bytes) -> None:
        """
        Encrypted bytes from the transport: decrypt and deliver them.
        """
        if self._ssl is None or self._appSendBuffer or type(data) is not bytes:
            TLSMemoryBIOProtocol.dataReceived(self, data)
            return
        if _BIO_write(self._into, data, len(data)) <= 0:
            # (A memory BIO takes all or nothing; let pyOpenSSL report why.)
            self._tlsConnection.bio_write(data)
        self._flushReceiveBIO()

    def _flushReceiveBIO(self) -> None:
        ssl = self._ssl
        if ssl is None:
            TLSMemoryBIOProtocol._flushReceiveBIO(self)
            return
        while not self._lostTLSConnection:
            n = _SSL_read(ssl, _buffer, _BUFFER_SIZE)
            if n > 0:
                data = _bytes_of(_buffer, n)[:]
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
                continue
            if _SSL_get_error(ssl, n) == _WANT_READ:
                break
            # Closed, or an error: Twisted's loop asks pyOpenSSL again, which
            # raises the matching exception, and handles it.
            TLSMemoryBIOProtocol._flushReceiveBIO(self)
            return
        self._flushSendBIO()

    def _flushSendBIO(self) -> None:
        if self._ssl is None:
            TLSMemoryBIOProtocol._flushSendBIO(self)
            return
        source = self._from
        n = _BIO_read(source, _buffer, _BUFFER_SIZE)
        if n <= 0:
            return
        data = _bytes_of(_buffer, n)[:]
        if n == _BUFFER_SIZE:
            pieces = [data]
            while n == _BUFFER_SIZE:
                n = _BIO_read(source, _buffer, _BUFFER_SIZE)
                if n > 0:
                    pieces.append(_bytes_of(_buffer, n)[:])
            data = b"".join(pieces)
        self._send(data)

    def _write(self, data: bytes) -> None:
        ssl = self._ssl
        if ssl is None or self._lostTLSConnection or type(data) is not bytes:
            TLSMemoryBIOProtocol._write(self, data)
            return
        # pyOpenSSL contexts allow partial writes (SSL_write returns after
        # each record) and a moving write buffer, so the bytes are handed
        # over in place, a record at a time, and flushed to the transport
        # every _WRITE_CHUNK bytes.
        pointer = _from_buffer(data)
        sent, total, flushed = 0, len(data), 0
        while sent < total:
            n = _SSL_write(ssl, pointer + sent, min(total - sent, _WRITE_CHUNK))
            if n <= 0:
                # (Asked before anything else can touch OpenSSL's error queue.)
                if _SSL_get_error(ssl, n) == _WANT_READ:
                    # (TLS 1.2 renegotiation.) As Twisted does: keep the
                    # bytes until the peer has answered.
                    self._flushSendBIO()
                    self._bufferedWrite(data[sent:])
                    return
                # An error: Twisted's code asks pyOpenSSL again, which
                # raises it, sends what is queued (records, the alert) and
                # closes the connection.
                TLSMemoryBIOProtocol._write(self, data[sent:])
                return
            sent += n
            if sent - flushed >= _WRITE_CHUNK:
                flushed = sent
                self._flushSendBIO()
        self._flushSendBIO()


_classes: dict[type, type[FastTLSProtocol]] = {}


def _class_for(kind: type, interfaces: Any) -> type[FastTLSProtocol]:
    """
    The L{FastTLSProtocol} subclass declaring C{interfaces}, the ones a
    transport of class C{kind} provides (made once per transport class).
    """
    cls = _classes.get(kind)
    if cls is None:
        cls = implementer(*interfaces)(
            type("FastTLSProtocolFor" + kind.__name__, (FastTLSProtocol,), {})
        )
        _classes[kind] = cls
    return cls


class FastTLSFactory(TLSMemoryBIOFactory):
    """
    A L{TLSMemoryBIOFactory} building L{FastTLSProtocol}s.
    """

    protocol = FastTLSProtocol
    noisy = False


def tls_factory(creator: Any, isClient: bool, wrappedFactory: Any) -> TLSMemoryBIOFactory:
    """
    The factory of the proxy's TLS connections: a L{FastTLSFactory}, or
    Twisted's own L{TLSMemoryBIOFactory} when the fast paths are off or
    L{FAST_SETUP} is False.  Its C{protocol} builds the connection's TLS
    protocol: C{factory.protocol(factory, wrappedProtocol)}.
    """
    if enabled() and FAST_SETUP:
        return FastTLSFactory(creator, isClient, wrappedFactory)
    factory = TLSMemoryBIOFactory(creator, isClient, wrappedFactory)
    factory.noisy = False
    return factory
