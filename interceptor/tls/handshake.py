# -*- test-case-name: tests.test_tls -*-
"""
TLS building blocks for interception: reading a ClientHello, the
connection creators for both sides, and upstream certificate checks.

    hello = parse_client_hello(first_bytes)        # None until complete
    hello.sni, hello.alpn_protocols

    creator = ServerTLS.for_leaf(leaf, alpn=b"h2")  # what the client sees
    upstream = UpstreamTLS(contexts.get(offers), sni="example.org")
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from zope.interface import implementer

from interceptor.model.url import is_host_name
from interceptor.tls.certs import Leaf, names_of
from interceptor.transport.fast.fasttls import FastTLSFactory, FastTLSProtocol

__all__ = [
    "server_name_for",
    "ClientHello",
    "parse_client_hello",
    "NotTLS",
    "ServerTLS",
    "UpstreamTLS",
    "UpstreamContexts",
    "verify_error_message",
    "check_hostname",
    "certificate_names",
    "FastTLSProtocol",
    "FastTLSFactory",
]

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_MAX_HELLO = 1 << 16


class NotTLS(ValueError):
    """
    The bytes are not a TLS ClientHello.
    """


class ClientHello:
    """
    What the proxy reads from a client's ClientHello before answering it.

    @ivar sni: The server name asked for, or None.
    @ivar alpn_protocols: The ALPN protocols offered, in order.
    """

    __slots__ = ("sni", "alpn_protocols")

    def __init__(self, sni: Optional[str], alpn_protocols: list[bytes]) -> None:
        self.sni = sni
        self.alpn_protocols = alpn_protocols

    def __repr__(self) -> str:
        return f"ClientHello(sni={self.sni!r}, alpn={self.alpn_protocols!r})"


def looks_like_tls(data: bytes) -> bool:
    """
    Whether C{data} starts like a TLS handshake record.
    """
    return len(data) >= 3 and data[0] == _HANDSHAKE and data[1] == 0x03


def parse_client_hello(data: bytes) -> Optional[ClientHello]:
    """
    Parse the ClientHello at the start of C{data}.

    @return: The L{ClientHello}, or None if more bytes are needed.
    @raise NotTLS: The bytes are not a ClientHello.
    """
    handshake = bytearray()
    offset = 0
    while True:
        if len(data) < offset + 5:
            return None
        if data[offset] != _HANDSHAKE or data[offset + 1] != 0x03:
            raise NotTLS("not a TLS handshake record")
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        if length == 0:
            raise NotTLS("empty handshake record")
        if len(data) < offset + 5 + length:
            return None
        handshake += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != _CLIENT_HELLO:
                raise NotTLS("the first handshake message is not a ClientHello")
            needed = 4 + int.from_bytes(handshake[1:4], "big")
            if needed > _MAX_HELLO:
                raise NotTLS("ClientHello too large")
            if len(handshake) >= needed:
                return _parse_hello_body(bytes(handshake[4:needed]))


def _server_name(raw: bytes) -> str:
    """
    The host name of a server_name extension, IDNA-decoded.

    @raise NotTLS: It is not a host name (a NUL byte, a space, an empty or
        over-long label...): nothing the proxy could ask a server for.
    """
    if not is_host_name(raw):
        raise NotTLS(f"invalid server name {raw[:80]!r}")
    return raw.decode("idna")


def _parse_hello_body(body: bytes) -> ClientHello:
    try:
        pos = 2 + 32  # version, random
        pos += 1 + body[pos]  # session id
        pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # cipher suites
        pos += 1 + body[pos]  # compression methods
        sni: Optional[str] = None
        alpn: list[bytes] = []
        if pos + 2 > len(body):
            return ClientHello(None, [])
        end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            ext_type = int.from_bytes(body[pos : pos + 2], "big")
            ext_len = int.from_bytes(body[pos + 2 : pos + 4], "big")
            ext = body[pos + 4 : pos + 4 + ext_len]
            pos += 4 + ext_len
            if ext_type == 0x0000 and len(ext) >= 5 and ext[2] == 0:
                name_len = int.from_bytes(ext[3:5], "big")
                sni = _server_name(ext[5 : 5 + name_len])
            elif ext_type == 0x0010 and len(ext) >= 2:
                i = 2
                while i < len(ext):
                    n = ext[i]
                    alpn.append(bytes(ext[i + 1 : i + 1 + n]))
                    i += 1 + n
        return ClientHello(sni, alpn)
    except (IndexError, UnicodeError) as e:
        raise NotTLS(f"malformed ClientHello: {e}") from None


def server_name_for(host: str) -> Optional[str]:
    """
    The server name (SNI) to send when connecting to C{host}: none for an
    IP address literal, which RFC 6066 does not allow there.
    """
    return None if isIPAddress(host) or isIPv6Address(host) else host


# -- the client-facing side ---------------------------------------------------

# Alerts a client sends when it does not accept the certificate it got.
_UNTRUSTED_ALERTS = ("unknown ca", "bad certificate", "certificate unknown",
                     "unsupported certificate", "certificate expired")


class HandshakeFailure:
    """
    Why a client's TLS handshake with the proxy failed.

    @ivar alert: OpenSSL's words for it (e.g. C{"tlsv1 alert unknown ca"}).
    @ivar untrusted: Whether the client refused the proxy's certificate.
    """

    __slots__ = ("alert", "untrusted")

    def __init__(self, alert: str) -> None:
        self.alert = alert
        self.untrusted = any(words in alert for words in _UNTRUSTED_ALERTS)


def handshake_failure(error: object) -> Optional[HandshakeFailure]:
    """
    The L{HandshakeFailure} an C{SSL.Error} from a client's handshake
    describes; None for any other error (the client just went away).
    """
    if not isinstance(error, SSL.Error) or not error.args:
        return None
    reasons = [
        str(entry[2]) for entry in error.args[0]
        if isinstance(entry, tuple) and len(entry) == 3 and entry[2]
    ] if isinstance(error.args[0], list) else [str(error.args[0])]
    return HandshakeFailure("; ".join(reasons) or "unknown error")



@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    Makes the server-side TLS connection the client talks to: the minted
    leaf, and the ALPN protocol the upstream chose.
    """

    # Contexts without a certificate, per (leaf key, chain, ALPN answer):
    # every leaf of a store shares its key and chain.
    _shared: dict[
        tuple[ec.EllipticCurvePrivateKey, tuple[x509.Certificate, ...], Optional[bytes]],
        SSL.Context,
    ] = {}

    def __init__(self, context: SSL.Context, cert: Optional[x509.Certificate] = None) -> None:
        self.context = context
        self.cert = cert

    @classmethod
    def for_leaf(cls, leaf: Leaf, alpn: Optional[bytes]) -> "ServerTLS":
        """
        A creator presenting C{leaf} and answering ALPN with C{alpn}.

        A leaf's first connection uses a context shared by all leaves of
        its store and sets the certificate on the connection (a new
        context costs more than a new leaf); a leaf used again gets a
        context of its own, kept on the leaf (it goes when the certificate
        store drops the leaf), so repeat connections set nothing.
        """
        context = leaf.contexts.get(alpn)
        if context is not None:
            return cls(context)
        if alpn in leaf.first_use:
            context = leaf.contexts[alpn] = _server_context(leaf, alpn)
            return cls(context)
        leaf.first_use.add(alpn)
        key = (leaf.key, tuple(leaf.chain), alpn)
        shared = cls._shared.get(key)
        if shared is None:
            if len(cls._shared) >= 64:
                cls._shared.clear()
            shared = cls._shared[key] = _server_context(leaf, alpn, with_cert=False)
        return cls(shared, leaf.cert)

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        A new server-side connection.
        """
        connection = SSL.Connection(self.context, None)
        if self.cert is not None:
            connection.use_certificate(self.cert)
        connection.set_app_data(tlsProtocol)
        return connection


def _server_context(leaf: Leaf, alpn: Optional[bytes], with_cert: bool = True) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    if with_cert:
        context.use_certificate(leaf.cert)
    context.use_privatekey(leaf.key)
    for cert in leaf.chain:
        context.add_extra_chain_cert(cert)

    def select(connection: SSL.Connection, offers: list[bytes]) -> Any:
        if alpn is not None and alpn in offers:
            return alpn
        if alpn is None and b"http/1.1" in offers:
            return b"http/1.1"
        return SSL.NO_OVERLAPPING_PROTOCOLS

    context.set_alpn_select_callback(select)
    return context


# -- the upstream side --------------------------------------------------------

# OpenSSL's X509_V_ERR_* codes for the reasons users meet most.
_VERIFY_REASONS = {
    2: "unable to get issuer certificate (unknown issuer)",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate (unknown issuer)",
    19: "self-signed certificate in certificate chain (unknown issuer)",
    20: "unable to get local issuer certificate (unknown issuer)",
    21: "unable to verify the first certificate (unknown issuer)",
    23: "certificate revoked",
    26: "unsupported certificate purpose",
    62: "hostname mismatch",
}


def verify_error_message(errno: int, depth: int) -> str:
    """
    A readable reason for an OpenSSL certificate verification error.
    """
    reason = _VERIFY_REASONS.get(errno, f"verification error {errno}")
    return f"{reason} (at depth {depth})"


_checked: dict[tuple[x509.Certificate, str], Optional[str]] = {}
_names: dict[x509.Certificate, list[str]] = {}
_CACHE_SIZE = 4096


def certificate_names(cert: x509.Certificate) -> list[str]:
    """
    L{names_of} C{cert}, remembered for certificates seen before (an
    upstream shows the same certificate on every connection).
    """
    names = _names.get(cert)
    if names is None:
        if len(_names) >= _CACHE_SIZE:
            _names.clear()
        names = _names[cert] = names_of(cert)
    return names


def check_hostname(cert: x509.Certificate, name: str) -> Optional[str]:
    """
    Check that a cryptography certificate is valid for C{name} (a DNS
    name or an IP address); answers for a certificate and name seen before
    are remembered.

    @return: None when it is, else why not.
    """
    key = (cert, name)
    try:
        return _checked[key]
    except KeyError:
        pass
    if len(_checked) >= _CACHE_SIZE:
        _checked.clear()
    problem = _checked[key] = _check_hostname(cert, name)
    return problem


def _check_hostname(cert: x509.Certificate, name: str) -> Optional[str]:
    checker: Callable[[x509.Certificate, str], None]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        checker, what = verify_certificate_hostname, "hostname"
    else:
        checker, what = verify_certificate_ip_address, "IP address"
    try:
        checker(cert, name)
    except VerificationError as e:
        return f"certificate is not valid for {what} {name!r} (wrong host): {e}"
    except Exception as e:  # service-identity rejects malformed names too
        return f"certificate is not valid for {what} {name!r}: {e}"
    return None


class UpstreamContexts:
    """
    Client-side TLS contexts for upstream connections, one per set of
    settings: verification on or off, an extra trusted CA file, ALPN offers.
    """

    def __init__(self) -> None:
        self._contexts: dict[tuple[bool, Optional[str], tuple[bytes, ...]], SSL.Context] = {}

    def get(
        self, insecure: bool, trusted_ca: Optional[str], alpn: Sequence[bytes]
    ) -> SSL.Context:
        """
        The context for these settings.

        @raise SSL.Error: The trusted CA file cannot be loaded.
        """
        key = (insecure, trusted_ca, tuple(alpn))
        context = self._contexts.get(key)
        if context is None:
            context = SSL.Context(SSL.TLS_METHOD)
            context.set_min_proto_version(SSL.TLS1_2_VERSION)
            context.set_options(SSL.OP_NO_COMPRESSION)
            if not insecure:
                context.set_default_verify_paths()
                if trusted_ca:
                    context.load_verify_locations(trusted_ca)
                context.set_verify(SSL.VERIFY_PEER, _record_verify_error)
            else:
                context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
            if alpn:
                context.set_alpn_protos(list(alpn))
            self._contexts[key] = context
        return context


def _record_verify_error(
    connection: SSL.Connection, cert: Any, errno: int, depth: int, ok: int
) -> bool:
    # Let the handshake finish and report the first failure afterwards, so
    # the client gets a 502 that names the reason rather than a reset.
    if not ok:
        protocol = connection.get_app_data()
        wrapped = getattr(protocol, "wrappedProtocol", None)
        if wrapped is not None and getattr(wrapped, "verify_error", None) is None:
            wrapped.verify_error = verify_error_message(errno, depth)
    return True


@implementer(IOpenSSLClientConnectionCreator)
class UpstreamTLS:
    """
    Makes the client-side TLS connection to an upstream server, with the
    client's SNI.
    """

    def __init__(self, context: SSL.Context, sni: Optional[str]) -> None:
        self.context = context
        self.sni = sni

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        A new client-side connection.
        """
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(tlsProtocol)
        if self.sni:
            connection.set_tlsext_host_name(self.sni.encode("idna"))
        connection.set_connect_state()
        return connection
