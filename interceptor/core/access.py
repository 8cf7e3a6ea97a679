# -*- test-case-name: tests.test_access -*-
"""
Who may use the proxy: the decisions behind the options C{block_global},
C{block_private} (which client addresses are refused) and C{proxyauth}
(which credentials are accepted), as mitmproxy has them.

    refused_by("8.8.8.8", block_global=True, block_private=False)    # "block_global"
    refused_by("127.0.0.1", block_global=True, block_private=True)   # None: loopback never is
    validator = validator_for("@/etc/interceptor.htpasswd")          # or "user:pass", "any"
    d = check_credentials(reactor, validator, "alice", "secret")     # Deferred[bool]

The C{block} and C{proxyauth} addons apply them to connections and
requests; the SOCKS5 layer checks its username/password method with
L{validator_for} too.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import hashlib
import hmac
import ipaddress
import threading
from typing import Optional

import bcrypt
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from zope.interface import Interface, implementer

__all__ = [
    "IValidator",
    "refused_by",
    "listens_beyond_loopback",
    "validator_for",
    "check_credentials",
    "parse_basic",
]


def _client_ip(host: str) -> Optional[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def refused_by(host: str, block_global: bool, block_private: bool) -> Optional[str]:
    """
    The option that refuses a client connecting from C{host}, or None.

    As mitmproxy's C{block} addon: a loopback address is never refused;
    C{block_private} refuses private addresses (IANA special-purpose
    registries: 10/8, 172.16/12, 192.168/16, fc00::/7, link-local, ...),
    C{block_global} globally reachable ones.  A client that is not on IP
    (a UNIX socket) is local, and never refused.
    """
    ip = _client_ip(host)
    if ip is None or ip.is_loopback:
        return None
    if block_private and ip.is_private:
        return "block_private"
    if block_global and ip.is_global:
        return "block_global"
    return None


def listens_beyond_loopback(host: str) -> bool:
    """
    Whether a socket listening on C{host} takes clients from other
    machines (every address, or an address that is not loopback).
    """
    ip = _client_ip(host) if host else None
    return ip is None or not ip.is_loopback


class IValidator(Interface):
    """
    Checks a username and password (the C{proxyauth} option).
    """

    def known(username: str, password: str) -> Optional[bool]:
        """
        The answer when it costs nothing (None: call C{check}).
        """

    def check(username: str, password: str) -> bool:
        """
        Check the credentials; may take a while (bcrypt) and is safe to
        call from a thread.
        """


@implementer(IValidator)
class AcceptAny:
    """
    C{proxyauth=any}: credentials are required, any are accepted.
    """

    def known(self, username: str, password: str) -> Optional[bool]:
        return True

    def check(self, username: str, password: str) -> bool:
        return True


@implementer(IValidator)
class SingleUser:
    """
    C{proxyauth=user:pass}.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username.encode("utf-8")
        self.password = password.encode("utf-8")

    def known(self, username: str, password: str) -> Optional[bool]:
        return self.check(username, password)

    def check(self, username: str, password: str) -> bool:
        # (Both compared, in constant time.)
        user_ok = hmac.compare_digest(username.encode("utf-8"), self.username)
        password_ok = hmac.compare_digest(password.encode("utf-8"), self.password)
        return user_ok and password_ok


_BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
_VERDICTS = 1024


@implementer(IValidator)
class Htpasswd:
    """
    C{proxyauth=@path}: an Apache htpasswd file with bcrypt (C{htpasswd -B})
    or SHA-1 (C{htpasswd -s}) entries, as mitmproxy takes.  A bcrypt check
    costs tens of milliseconds by design, so the last L{_VERDICTS}
    answers are kept (keyed by a SHA-256 of the credentials, not the
    password itself) and a client sending its credentials with every
    request costs one check.
    """

    def __init__(self, path: str, entries: dict[str, str]) -> None:
        self.path = path
        self.entries = entries
        # (Checked in threads, read in the reactor's.)
        self._lock = threading.Lock()
        self._verdicts: collections.OrderedDict[bytes, bool] = collections.OrderedDict()

    @classmethod
    def from_file(cls, path: str) -> "Htpasswd":
        """
        Read C{path}.

        @raise ValueError: It cannot be read, or holds an entry that is not
            C{user:hash} with a bcrypt or C{{SHA}} hash.
        """
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read htpasswd file {path}: {e}") from None
        entries = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise ValueError(f"htpasswd file {path}, line {number}: expected USER:HASH")
            if not hashed.startswith(_BCRYPT_PREFIXES + ("{SHA}",)):
                raise ValueError(
                    f"htpasswd file {path}, line {number}: user {user!r} has an unsupported hash "
                    "(only bcrypt, htpasswd -B, and SHA-1, htpasswd -s, are supported)"
                )
            entries[user] = hashed
        if not entries:
            raise ValueError(f"htpasswd file {path} has no entries")
        return cls(path, entries)

    def _key(self, username: str, password: str) -> bytes:
        return hashlib.sha256(f"{username}\0{password}".encode("utf-8", "surrogatepass")).digest()

    def known(self, username: str, password: str) -> Optional[bool]:
        hashed = self.entries.get(username)
        if hashed is None:
            return False
        if hashed.startswith("{SHA}"):
            return self.check(username, password)
        with self._lock:
            return self._verdicts.get(self._key(username, password))

    def check(self, username: str, password: str) -> bool:
        hashed = self.entries.get(username)
        if hashed is None:
            return False
        secret = password.encode("utf-8", "surrogatepass")
        if hashed.startswith("{SHA}"):
            digest = base64.b64encode(hashlib.sha1(secret).digest()).decode("ascii")
            return hmac.compare_digest(digest, hashed[5:])
        try:
            valid = bcrypt.checkpw(secret, hashed.encode("ascii"))
        except ValueError:
            # (A malformed hash, or a password bcrypt refuses: over 72 bytes.)
            valid = False
        key = self._key(username, password)
        with self._lock:
            verdicts = self._verdicts
            verdicts[key] = valid
            while len(verdicts) > _VERDICTS:
                verdicts.popitem(last=False)
        return valid


@functools.lru_cache(maxsize=8)
def validator_for(spec: str) -> IValidator:
    """
    The validator of a C{proxyauth} value: C{any}, C{@path/to/htpasswd} or
    C{user:pass} (the password may contain C{:}).  An htpasswd file is read
    once per value.

    @raise ValueError: The value is none of these, or the file is unusable.
    """
    if spec == "any":
        return AcceptAny()
    if spec.startswith("@"):
        return Htpasswd.from_file(spec[1:])
    user, sep, password = spec.partition(":")
    if not sep or not user:
        raise ValueError(f"{spec!r} is not 'any', USER:PASS or @HTPASSWD_FILE")
    return SingleUser(user, password)


def check_credentials(
    reactor: IReactorThreads, validator: IValidator, username: str, password: str
) -> Deferred[bool]:
    """
    Whether the credentials are valid: at once when that is known, else
    checked in the reactor's thread pool (a bcrypt hash), so the proxy goes
    on meanwhile.
    """
    known = validator.known(username, password)
    if known is not None:
        return succeed(known)
    checked: Deferred[bool] = deferToThreadPool(
        reactor, reactor.getThreadPool(), validator.check, username, password
    )
    return checked


def parse_basic(value: Optional[str]) -> Optional[tuple[str, str]]:
    """
    The (username, password) of a C{Basic} authorization header value, or
    None when it is missing or not Basic credentials.
    """
    if not value:
        return None
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    return username, password
