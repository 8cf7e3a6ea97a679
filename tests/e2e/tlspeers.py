# -*- test-case-name: tests.e2e.test_tls -*-
"""
TLS peers on 127.0.0.1 for the HTTPS interception tests: a test CA made
with C{cryptography}, HTTPS twisted.web servers with certificates from it
(valid, expired, wrong host), a raw TCP echo server, and blocking TLS
clients (urllib, a manual CONNECT + C{ssl} client) run in a thread::

    ca = TestCA.shared()
    server = await HttpsServer.start(self, ca)                 # valid for localhost, 127.0.0.1
    bad = await HttpsServer.start(self, ca, names=["wrong.test"])
    echo = await EchoServer.start(self)
    result = await tunnel_tls(proxy.port_number, "localhost", server.port,
                              cafile=ca.cert_path(self), server_hostname="localhost")

Everything started here is stopped in the test's cleanup; every blocking
client has a socket timeout and is run with C{deferToThread}.
"""

from __future__ import annotations

import datetime
import json
import os
import select
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from interceptor.tls.certs import general_name
from tests.e2e.peers import LoopbackServer, tracking_factory

__all__ = [
    "TestCA",
    "HttpsServer",
    "EchoServer",
    "TunnelResult",
    "tunnel_tls",
    "urllib_get",
    "in_thread",
    "pem_of",
    "peer_chain",
]

_TIMEOUT = 5.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)



def pem_of(cert: x509.Certificate) -> bytes:
    """
    The PEM encoding of C{cert}.
    """
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Any) -> bytes:
    """
    The unencrypted PKCS#8 PEM encoding of the private key C{key}.
    """
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCA:
    """
    A certificate authority for the test servers (not the proxy's CA).

    @ivar cert: Its self-signed certificate.
    @ivar key: Its private key.
    """

    _shared: Optional["TestCA"] = None

    def __init__(self, common_name: str = "interceptor test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self._issued: dict[tuple, tuple[x509.Certificate, Any]] = {}

    @classmethod
    def shared(cls) -> "TestCA":
        """
        One test CA for the whole run (making keys is the slow part).
        """
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def issue(
        self, names: Sequence[str], expired: bool = False
    ) -> tuple[x509.Certificate, Any]:
        """
        A server certificate (and its key) for C{names}, valid now, or
        expired since yesterday; made once per (names, expired).
        """
        cache_key = (tuple(names), expired)
        if cache_key in self._issued:
            return self._issued[cache_key]
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        if expired:
            start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        else:
            start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.SubjectAlternativeName([general_name(n) for n in names]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self._issued[cache_key] = (cert, key)
        return cert, key

    def intermediate(self, common_name: str) -> tuple[x509.Certificate, Any]:
        """
        A CA certificate for C{common_name} signed by this one (an
        intermediate CA), and its key.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert, key

    def cert_path(self, testcase: Any) -> str:
        """
        Write the CA certificate into a new temporary directory of
        C{testcase}; the path (to trust it).
        """
        directory = testcase.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "test-ca.pem")
        with open(path, "wb") as f:
            f.write(pem_of(self.cert))
        return path

    def key_and_cert_files(self, testcase: Any, names: Sequence[str]) -> tuple[str, str]:
        """
        Write a server key and certificate for C{names} into a new
        temporary directory; their paths (key, cert).
        """
        cert, key = self.issue(names)
        directory = testcase.mktemp()
        os.makedirs(directory)
        key_path = os.path.join(directory, "server-key.pem")
        cert_path = os.path.join(directory, "server-cert.pem")
        with open(key_path, "wb") as f:
            f.write(key_pem(key))
        with open(cert_path, "wb") as f:
            f.write(pem_of(cert) + pem_of(self.cert))
        return key_path, cert_path


# -- an HTTPS server ----------------------------------------------------------


class _Handler(Resource):
    """
    C{/echo}: the request as JSON; C{/hello}: "hello world"; anything else
    404.
    """

    isLeaf = True

    def __init__(self, server: "HttpsServer") -> None:
        super().__init__()
        self.server = server

    def render(self, request: Any) -> bytes:
        self.server.requests.append(request)
        path = request.path.split(b"?", 1)[0]
        if path == b"/hello":
            request.setHeader(b"content-type", b"text/plain")
            request.setHeader(b"x-upstream", b"yes")
            return b"hello world"
        if path == b"/echo":
            request.setHeader(b"content-type", b"application/json")
            headers = {
                k.decode("latin-1").lower(): [v.decode("latin-1") for v in vs]
                for k, vs in request.requestHeaders.getAllRawHeaders()
            }
            body = request.content.read() if request.content is not None else b""
            return json.dumps(
                {
                    "method": request.method.decode(),
                    "uri": request.uri.decode(),
                    "clientproto": request.clientproto.decode(),
                    "headers": headers,
                    "body": body.decode("latin-1"),
                }
            ).encode()
        request.setResponseCode(404)
        return b"not found"


def _server_context(
    cert: x509.Certificate, key: Any, ca_cert: x509.Certificate, alpn: Optional[Sequence[bytes]]
) -> SSL.Context:
    # A context of our own (Twisted's CertificateOptions always answers ALPN,
    # failing the handshake when nothing overlaps: no "server without ALPN").
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate(crypto.X509.from_cryptography(cert))
    context.use_privatekey(crypto.PKey.from_cryptography_key(key))
    context.add_extra_chain_cert(crypto.X509.from_cryptography(ca_cert))
    if alpn:
        supported = list(alpn)

        def select(connection: SSL.Connection, offers: list[bytes]) -> Any:
            for protocol in supported:
                if protocol in offers:
                    return protocol
            return SSL.NO_OVERLAPPING_PROTOCOLS

        context.set_alpn_select_callback(select)
    return context


@implementer(IOpenSSLServerConnectionCreator)
class _ServerCreator:
    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def serverConnectionForTLS(self, protocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(protocol)
        return connection


class HttpsServer(LoopbackServer):
    """
    A twisted.web Site over TLS on 127.0.0.1, with a certificate from a
    L{TestCA}.

    @ivar cert: The certificate it presents.
    @ivar requests: The twisted.web requests it answered.
    @ivar connections: Every accepted connection.
    """

    def __init__(self, cert: x509.Certificate) -> None:
        super().__init__()
        self.cert = cert
        self.requests: list[Any] = []

    @classmethod
    async def start(
        cls,
        testcase: Any,
        ca: TestCA,
        names: Sequence[str] = ("localhost", "127.0.0.1"),
        expired: bool = False,
        alpn: Optional[Sequence[bytes]] = (b"http/1.1",),
    ) -> "HttpsServer":
        """
        Listen on a free port of 127.0.0.1 with a certificate for C{names}
        (expired if asked) answering ALPN from C{alpn} (None: no ALPN);
        stopped in C{testcase}'s cleanup.
        """
        cert, key = ca.issue(list(names), expired=expired)
        server = cls(cert)
        options = _ServerCreator(_server_context(cert, key, ca.cert, alpn))
        site = Site(_Handler(server))
        site.noisy = False
        site.log = lambda request: None
        server._listen(testcase, tracking_factory(site, server.connections), options)
        return server

    def url(self, path: str = "/", host: str = "localhost") -> str:
        """
        C{https://host:port} + C{path}.
        """
        return f"https://{host}:{self.port}{path}"

    @property
    def der(self) -> bytes:
        """
        The DER bytes of the certificate it presents.
        """
        return self.cert.public_bytes(serialization.Encoding.DER)


# -- a raw TCP echo server ----------------------------------------------------


class _EchoProtocol(Protocol):
    def __init__(self, server: "EchoServer") -> None:
        self.server = server
        self.closed = False
        self.lost: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.server.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.server.received += data
        self.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.lost.callback(None)


class EchoServer(LoopbackServer):
    """
    A TCP server on 127.0.0.1 sending back every byte it gets.

    @ivar received: Everything received, over all connections.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received = b""

    @classmethod
    async def start(cls, testcase: Any) -> "EchoServer":
        """
        Listen on a free port of 127.0.0.1; stopped in C{testcase}'s cleanup.
        """
        server = cls()
        server._listen(testcase, Factory.forProtocol(lambda: _EchoProtocol(server)))
        return server


# -- blocking clients, run in a thread ---------------------------------------


def in_thread(function: Any, *args: Any, timeout: float = 15.0, **kwargs: Any) -> Deferred:
    """
    Run the blocking C{function} in the reactor's thread pool; the
    Deferred fails with a timeout if it has not returned in C{timeout}
    seconds (the function's own socket timeouts end the thread).
    """
    d = deferToThread(function, *args, **kwargs)
    d.addTimeout(timeout, reactor)
    return d


class TunnelResult:
    """
    What L{tunnel_tls} saw.

    @ivar connect_response: The proxy's answer to CONNECT (head bytes).
    @ivar peer_der: The DER certificate the TLS server presented.
    @ivar peer: C{ssl.getpeercert()} of it (verified).
    @ivar alpn: The ALPN protocol negotiated, or None.
    @ivar version: The TLS version negotiated (e.g. C{"TLSv1.3"}), or None.
    @ivar response: The bytes read after sending the request.
    @ivar error: The C{ssl} error if the handshake failed, else None.
    """

    def __init__(self) -> None:
        self.connect_response = b""
        self.peer_der: Optional[bytes] = None
        self.peer: Optional[dict] = None
        self.alpn: Optional[str] = None
        self.version: Optional[str] = None
        self.response = b""
        self.error: Optional[BaseException] = None

    @property
    def san(self) -> list[tuple[str, str]]:
        """
        The subjectAltName entries of the peer certificate.
        """
        return list((self.peer or {}).get("subjectAltName", ()))


def _tunnel_tls(
    proxy_port: int,
    host: str,
    port: int,
    cafile: Optional[str],
    server_hostname: Optional[str],
    alpn: Optional[Sequence[str]],
    request: Optional[bytes],
    verify: bool,
    tls_max: Optional[ssl.TLSVersion] = None,
) -> TunnelResult:
    result = TunnelResult()
    raw = socket.create_connection(("127.0.0.1", proxy_port), timeout=_TIMEOUT)
    try:
        authority = f"[{host}]" if ":" in host else host
        raw.sendall(f"CONNECT {authority}:{port} HTTP/1.1\r\nHost: {authority}:{port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = raw.recv(1)
            if not chunk:
                break
            head += chunk
        result.connect_response = head
        if not head.startswith(b"HTTP/1.1 200"):
            return result
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            context.load_verify_locations(cafile)
            # (Without a name to check, the chain is still verified.)
            context.check_hostname = server_hostname is not None
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if alpn:
            context.set_alpn_protocols(list(alpn))
        if tls_max is not None:
            context.maximum_version = tls_max
        try:
            tls = context.wrap_socket(raw, server_hostname=server_hostname)
        except (ssl.SSLError, ssl.CertificateError, OSError) as e:
            result.error = e
            return result
        raw = tls
        result.peer_der = tls.getpeercert(binary_form=True)
        result.peer = tls.getpeercert() if verify else None
        result.alpn = tls.selected_alpn_protocol()
        result.version = tls.version()
        if request:
            tls.sendall(request)
            data = b""
            while True:
                try:
                    chunk = tls.recv(65536)
                except (socket.timeout, ssl.SSLError, OSError):
                    break
                if not chunk:
                    break
                data += chunk
            result.response = data
        return result
    finally:
        raw.close()


def _peer_chain(
    proxy_port: int, host: str, port: int, cafile: str, server_hostname: str
) -> tuple[list[str], list[str]]:
    raw = socket.create_connection(("127.0.0.1", proxy_port), timeout=_TIMEOUT)
    try:
        raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = raw.recv(1)
            if not chunk:
                raise ConnectionError(f"CONNECT answered {head!r}")
            head += chunk
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.load_verify_locations(cafile)
        context.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
        connection = SSL.Connection(context, raw)
        connection.set_tlsext_host_name(server_hostname.encode())
        connection.set_connect_state()
        while True:
            try:
                connection.do_handshake()
                break
            except SSL.WantReadError:
                # (The socket has a timeout, so OpenSSL sees it as non-blocking.)
                if not select.select([raw], [], [], _TIMEOUT)[0]:
                    raise TimeoutError("TLS handshake through the proxy timed out")

        def common_names(certs: Any) -> list[str]:
            return [c.to_cryptography().subject.rfc4514_string() for c in certs or ()]

        return (
            common_names(connection.get_peer_cert_chain()),
            common_names(connection.get_verified_chain()),
        )
    finally:
        raw.close()


def peer_chain(proxy_port: int, host: str, port: int, cafile: str, server_hostname: str) -> Deferred:
    """
    In a thread: CONNECT to C{host:port} through the proxy, then a TLS
    handshake with pyOpenSSL trusting only C{cafile}.

    @return: A Deferred firing with (the subjects of the certificates the
        server presented, the subjects of the chain the client verified,
        leaf first); it fails if verification fails.
    """
    return in_thread(_peer_chain, proxy_port, host, port, cafile, server_hostname)


def tunnel_tls(
    proxy_port: int,
    host: str,
    port: int,
    cafile: Optional[str] = None,
    server_hostname: Optional[str] = None,
    alpn: Optional[Sequence[str]] = None,
    request: Optional[bytes] = None,
    verify: bool = True,
    tls_max: Optional[ssl.TLSVersion] = None,
) -> Deferred:
    """
    In a thread: CONNECT to C{host:port} through the proxy, then a TLS
    handshake with Python's C{ssl} trusting only C{cafile} (SNI
    C{server_hostname}; none for an IP address), then send C{request}
    (which should ask the server to close) and read until the end; at
    most TLS version C{tls_max} if given.

    @return: A Deferred firing with a L{TunnelResult}.
    """
    return in_thread(
        _tunnel_tls, proxy_port, host, port, cafile, server_hostname, alpn, request, verify, tls_max
    )


def _urllib_get(
    url: str, proxy_url: str, cafile: str, headers: Optional[dict]
) -> tuple[int, dict, bytes]:
    # With cafile given, the system's CAs are not loaded: only cafile is trusted.
    context = ssl.create_default_context(cafile=cafile)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy_url, "https": proxy_url}),
        urllib.request.HTTPSHandler(context=context),
    )
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=_TIMEOUT) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers.items()), e.read()


def urllib_get(
    url: str, proxy_url: str, cafile: str, headers: Optional[dict] = None
) -> Deferred:
    """
    In a thread: GET C{url} with urllib through the proxy at C{proxy_url},
    trusting only C{cafile}.

    @return: A Deferred firing with (status, headers, body).
    """
    return in_thread(_urllib_get, url, proxy_url, cafile, headers)
