# -*- test-case-name: tests.compat.test_surface -*-
"""
The exceptions addon scripts catch or raise, with the names mitmproxy's
C{mitmproxy.exceptions} gives them (its 12.x names and the 2.x ones its
older scripts still use)::

    from interceptor import exceptions

    def configure(updated):
        if "limit" in updated and ctx.options.limit < 0:
            raise exceptions.OptionsError("limit must not be negative")

Where interceptor itself raises one of these, it is the same class:
L{OptionsError} is L{interceptor.core.options.OptionsError},
L{FlowReadException} is L{interceptor.io.FlowReadException} and
L{CommandError} (raised by C{master.commands.call}) is
L{interceptor.core.commands.CommandError}.  Those three keep their own
bases (C{Exception}, C{ValueError}), so an
C{except InterceptorException} does not catch them: catch them by name.

The 2.x protocol exceptions (L{ProtocolException}, L{TlsProtocolException},
L{HttpException}, ...) form mitmproxy's hierarchy so scripts that name
them import and run; interceptor's layers report failures as
C{flow.error} and the C{error} events, not by raising these to scripts.
"""

from __future__ import annotations

from typing import Optional

from interceptor.core.commands import CommandError
from interceptor.core.options import OptionsError
from interceptor.io.exceptions import FlowReadException

__all__ = [
    "AddonHalt",
    "AddonManagerError",
    "ClientHandshakeException",
    "CommandError",
    "ContentViewException",
    "ControlException",
    "Disconnect",
    "FlowReadException",
    "Http2ProtocolException",
    "Http2ZombieException",
    "HttpException",
    "HttpProtocolException",
    "HttpReadDisconnect",
    "HttpSyntaxException",
    "InterceptorException",
    "InvalidCertificateException",
    "InvalidServerCertificate",
    "Kill",
    "MitmproxyException",
    "NetlibException",
    "OptionsError",
    "ProtocolException",
    "ReplayException",
    "ServerException",
    "SetServerNotAllowedException",
    "Socks5ProtocolException",
    "TcpDisconnect",
    "TcpException",
    "TcpReadIncomplete",
    "TcpTimeout",
    "Timeout",
    "TlsException",
    "TlsProtocolException",
]


class InterceptorException(Exception):
    """
    The base of the exceptions in this module (but see L{OptionsError} and
    L{FlowReadException} in the module docstring).
    """

    def __init__(self, message: Optional[str] = None) -> None:
        super().__init__(message)


MitmproxyException = InterceptorException
"""mitmproxy's name for L{InterceptorException}."""


class AddonManagerError(InterceptorException):
    """An addon could not be loaded or managed."""


class AddonHalt(InterceptorException):
    """
    mitmproxy's signal that no further addon should handle an event.
    interceptor's addon manager does not stop the chain for it: raised
    from a hook, it is reported as that addon's error.
    """


class ControlException(InterceptorException):
    """A flow was controlled (resumed, killed, ...) when it could not be."""


class ContentViewException(InterceptorException):
    """A content view failed."""


class ReplayException(InterceptorException):
    """A flow could not be replayed."""


class ServerException(InterceptorException):
    """The proxy server could not start."""


class SetServerNotAllowedException(InterceptorException):
    """A script changed the server of a connection where it may not."""


class Kill(InterceptorException):
    """mitmproxy 2.x: both connections should be killed at once."""


class ProtocolException(InterceptorException):
    """A peer broke a protocol, or a network resource was unavailable (mitmproxy 2.x)."""


class TlsProtocolException(ProtocolException):
    """A TLS handshake or record failed (mitmproxy 2.x)."""


class ClientHandshakeException(TlsProtocolException):
    """
    The client refused the proxy's TLS handshake (mitmproxy 2.x).

    @ivar server: The server name the client asked for.
    """

    def __init__(self, message: Optional[str] = None, server: Optional[str] = None) -> None:
        super().__init__(message)
        self.server = server


class InvalidServerCertificate(TlsProtocolException):
    """The server's certificate did not verify (mitmproxy 2.x)."""

    def __repr__(self) -> str:
        return str(self)


class Socks5ProtocolException(ProtocolException):
    """A SOCKS5 client broke the protocol (mitmproxy 2.x)."""


class HttpProtocolException(ProtocolException):
    """An HTTP peer broke the protocol (mitmproxy 2.x)."""


class Http2ProtocolException(ProtocolException):
    """An HTTP/2 peer broke the protocol (mitmproxy 2.x)."""


class Http2ZombieException(ProtocolException):
    """An HTTP/2 stream was used after it ended (mitmproxy 2.x)."""


class NetlibException(InterceptorException):
    """The base of mitmproxy 2.x's network-level exceptions."""


class Disconnect:
    """Mixed into the exceptions that mean the peer closed the connection (mitmproxy 2.x)."""


class HttpException(NetlibException):
    """HTTP could not be read or written (mitmproxy 2.x)."""


class HttpReadDisconnect(HttpException, Disconnect):
    """The peer closed the connection while HTTP was read (mitmproxy 2.x)."""


class HttpSyntaxException(HttpException):
    """HTTP that does not parse (mitmproxy 2.x)."""


class TcpException(NetlibException):
    """A TCP connection failed (mitmproxy 2.x)."""


class TcpDisconnect(TcpException, Disconnect):
    """The peer closed the TCP connection (mitmproxy 2.x)."""


class TcpReadIncomplete(TcpException):
    """Fewer bytes arrived than were expected (mitmproxy 2.x)."""


class TcpTimeout(TcpException):
    """A TCP connection timed out (mitmproxy 2.x)."""


class Timeout(TcpException):
    """An operation timed out (mitmproxy 2.x)."""


class TlsException(NetlibException):
    """TLS failed at the network level (mitmproxy 2.x)."""


class InvalidCertificateException(TlsException):
    """A certificate did not verify (mitmproxy 2.x)."""
