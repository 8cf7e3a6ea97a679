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

Authentication: when the option C{proxyauth} exists and holds
C{user:pass}, clients must send those credentials; otherwise a client
offering "no authentication" gets it, and one offering only
username/password has any credentials accepted (the username is kept in
C{root.socks_username}).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, Callable, NoReturn, Optional

from twisted.logger import Logger
from zope.interface import implementer

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
    C{auth} (username/password) when that method was chosen, then
    C{request}, then C{done} (the tunnel is the root's).

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
        self._credentials = _configured_credentials(self.master.options)

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
        try:
            while self._state != "done":
                if not _STEPS[self._state](self):
                    break
        except Socks5Error as e:
            _log.info("{client}: SOCKS5: {error}", client=self.root.client_conn.address, error=str(e))
            self.root.transport.loseConnection()
            self._state = "done"
            return
        if len(self._buffer) > _MAX_BUFFER and self._state != "done":
            self._fail("handshake too long")

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
        if self._credentials is None and _NO_AUTH in methods:
            self.root.transport.write(bytes((_VERSION, _NO_AUTH)))
            self._state = "request"
        elif _USER_PASS in methods:
            self.root.transport.write(bytes((_VERSION, _USER_PASS)))
            self._state = "auth"
        else:
            self.root.transport.write(bytes((_VERSION, _NO_METHOD)))
            self._fail("no acceptable authentication method offered")
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
        if self._credentials is not None and (username, password) != self._credentials:
            self.root.transport.write(b"\x01\x01")
            self._fail(f"wrong credentials for user {username!r}")
        self.root.socks_username = username
        self.root.transport.write(b"\x01\x00")
        self._state = "request"
        return True

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


def _configured_credentials(options: Any) -> Optional[tuple[str, str]]:
    value = options.proxyauth if "proxyauth" in options else None
    if not value or not isinstance(value, str) or ":" not in value or value == "any":
        return None
    user, _, password = value.partition(":")
    return user, password
