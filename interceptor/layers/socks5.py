# -*- test-case-name: tests.e2e.test_modes -*-
"""
SOCKS5 (RFC 1928) CONNECT, the first layer of C{mode=socks5}::

    curl --socks5-hostname 127.0.0.1:1080 http://example.org/

The layer answers the greeting (no authentication, or username/password
per RFC 1929), reads the CONNECT request (IPv4, IPv6 or a domain name),
answers success, and hands the connection to the root as a tunnel to that
address: from there on the same layers as after an HTTP CONNECT (TLS,
HTTP/1, raw TCP by C{tcp_hosts} or detection), with C{next_layer} asked as
usual.

Authentication, as mitmproxy: when the option C{proxyauth} is set (the
C{proxyauth} addon declares it: C{user:pass}, C{@htpasswd}, C{any}) the
only method offered is username/password (RFC 1929), and the credentials
are checked against it (an htpasswd bcrypt entry in a thread, the client's
bytes kept meanwhile); otherwise the only method is "no authentication".
A client that does not offer the method gets 0xFF (no acceptable method)
and is closed; wrong credentials get status 1 and are closed, with one log
line.  The username is kept in C{root.socks_username}.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, Callable, NoReturn, Optional

from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.core.access import IValidator, check_credentials, validator_for
from interceptor.layers.contracts import ILayer

__all__ = ["Socks5Layer", "Socks5Error"]

_log = Logger(namespace="interceptor.socks5")

_VERSION = 5
_NO_AUTH, _USER_PASS, _NO_METHOD = 0x00, 0x02, 0xFF
_CONNECT = 1
_IPV4, _DOMAIN, _IPV6 = 1, 3, 4
_SUCCEEDED, _GENERAL_FAILURE, _COMMAND_NOT_SUPPORTED, _ATYP_NOT_SUPPORTED = 0, 1, 7, 8
_MAX_BUFFER = 1024


class Socks5Error(Exception):
    """
    The client broke the SOCKS5 protocol.
    """


@implementer(ILayer)
class Socks5Layer:
    """
    The SOCKS5 handshake of one client connection: C{greeting}, then
    C{auth} (username/password) when C{proxyauth} is set, C{checking}
    while the credentials are checked, then C{request}, then C{done} (the
    tunnel is the root's).

    @ivar root: The L{interceptor.proxy.ProxyProtocol}.
    @ivar address: The (host, port) the client asked for, once known.
    """

    def __init__(self, root: Any) -> None:
        self.root = root
        self.master = root.master
        self.layer: Optional[ILayer] = None
        self.address: Optional[tuple[str, int]] = None
        self._buffer = b""
        self._state = "greeting"
        self._stepping = False
        options = self.master.options
        self._proxyauth: Optional[str] = options.proxyauth if "proxyauth" in options else None

    def __repr__(self) -> str:
        return f"<Socks5Layer {self.address}>"

    def start(self) -> None:
        """
        Wait for the client's greeting.
        """

    def data_received(self, data: bytes) -> None:
        """
        Parse the handshake as it arrives.
        """
        self._buffer += data
        self._step()

    def _step(self) -> None:
        # Each step reads one message, while there is one and the state has
        # a reader (not while credentials are checked).
        self._stepping = True
        try:
            while self._state in _STEPS:
                if not _STEPS[self._state](self):
                    break
            if len(self._buffer) > _MAX_BUFFER and self._state != "done":
                self._fail("handshake too long")
        except Socks5Error as e:
            self._close(str(e))
        finally:
            self._stepping = False

    def _close(self, message: str) -> None:
        _log.info("{client}: SOCKS5: {error}", client=self.root.client_conn.address, error=message)
        self.root.transport.loseConnection()
        self._state = "done"

    def _fail(self, message: str) -> NoReturn:
        raise Socks5Error(message)

    def _read_greeting(self) -> bool:
        buf = self._buffer
        if len(buf) < 2:
            return False
        if buf[0] != _VERSION:
            self._fail(f"not SOCKS5 (version byte {buf[0]})")
        count = buf[1]
        if len(buf) < 2 + count:
            return False
        methods = set(buf[2 : 2 + count])
        self._buffer = buf[2 + count :]
        method = _USER_PASS if self._proxyauth else _NO_AUTH
        if method not in methods:
            self.root.transport.write(bytes((_VERSION, _NO_METHOD)))
            wanted = "username/password (proxyauth is set)" if self._proxyauth else "no authentication"
            self._fail(f"the client does not offer {wanted}")
        self.root.transport.write(bytes((_VERSION, method)))
        self._state = "auth" if method == _USER_PASS else "request"
        return True

    def _read_auth(self) -> bool:
        buf = self._buffer
        if len(buf) < 2:
            return False
        if buf[0] != 1:
            self._fail(f"bad username/password version {buf[0]}")
        ulen = buf[1]
        if len(buf) < 3 + ulen:
            return False
        plen = buf[2 + ulen]
        if len(buf) < 3 + ulen + plen:
            return False
        username = buf[2 : 2 + ulen].decode("utf-8", "replace")
        password = buf[3 + ulen : 3 + ulen + plen].decode("utf-8", "replace")
        self._buffer = buf[3 + ulen + plen :]
        try:
            validator: IValidator = validator_for(self._proxyauth or "")
        except ValueError as e:
            self.root.transport.write(b"\x01\x01")
            self._fail(f"option proxyauth: {e}")
        self._state = "checking"
        d = check_credentials(self.master.reactor, validator, username, password)
        d.addCallback(self._checked, username)
        d.addErrback(self._check_failed)
        # (Go on at once when the answer was known.)
        return self._state != "checking"

    def _checked(self, valid: bool, username: str) -> None:
        if self._state != "checking":
            # (The client went away meanwhile.)
            return
        if not valid:
            self.root.transport.write(b"\x01\x01")
            self._close(f"wrong credentials for user {username!r}")
            return
        self.root.socks_username = username
        self.root.transport.write(b"\x01\x00")
        self._state = "request"
        if not self._stepping:
            self._step()

    def _check_failed(self, failure: Failure) -> None:
        _log.failure("Error checking SOCKS5 credentials", failure)
        if self._state == "checking":
            self.root.transport.write(b"\x01\x01")
            self._close("the credentials could not be checked")

    def _read_request(self) -> bool:
        buf = self._buffer
        if len(buf) < 5:
            return False
        version, command, _, atyp = buf[:4]
        if version != _VERSION:
            self._fail(f"bad request version {version}")
        if atyp == _IPV4:
            end = 4 + 4
            if len(buf) < end + 2:
                return False
            host = str(ipaddress.IPv4Address(buf[4:end]))
        elif atyp == _IPV6:
            end = 4 + 16
            if len(buf) < end + 2:
                return False
            host = str(ipaddress.IPv6Address(buf[4:end]))
        elif atyp == _DOMAIN:
            end = 5 + buf[4]
            if len(buf) < end + 2:
                return False
            try:
                host = buf[5:end].decode("idna")
            except UnicodeError:
                self._reply(_GENERAL_FAILURE)
                self._fail(f"invalid domain name {bytes(buf[5:end])[:100]!r}")
        else:
            self._reply(_ATYP_NOT_SUPPORTED)
            self._fail(f"unsupported address type {atyp}")
        port = struct.unpack("!H", buf[end : end + 2])[0]
        rest, self._buffer = buf[end + 2 :], b""
        if command != _CONNECT:
            self._reply(_COMMAND_NOT_SUPPORTED)
            self._fail(f"unsupported command {command} (only CONNECT)")
        self.address = (host, port)
        self._state = "done"
        self._reply(_SUCCEEDED)
        self.root.start_tunnel(self.address, rest)
        return False

    def _reply(self, code: int) -> None:
        # The bound address is not meaningful for a proxy in the middle:
        # 0.0.0.0:0, as many SOCKS servers answer.
        self.root.transport.write(bytes((_VERSION, code, 0, _IPV4, 0, 0, 0, 0, 0, 0)))

    def connection_lost(self, reason: object) -> None:
        """
        The client went away during the handshake.
        """
        self._state = "done"


#: What reads the client's next message in each state of the handshake;
#: each returns whether to go on (False: wait for more bytes, or done).
_STEPS: dict[str, Callable[[Socks5Layer], bool]] = {
    "greeting": Socks5Layer._read_greeting,
    "auth": Socks5Layer._read_auth,
    "request": Socks5Layer._read_request,
}
