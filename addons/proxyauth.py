# -*- test-case-name: tests.e2e.test_access -*-
"""
Requires credentials from clients, as mitmproxy's C{proxyauth} addon, with
the option C{proxyauth}:

    - C{user:pass}: that user with that password;
    - C{@path/to/htpasswd}: an Apache htpasswd file (bcrypt or SHA-1
      entries);
    - C{any}: credentials must be sent, any are accepted.

In regular and upstream mode (an HTTP proxy) a CONNECT or a plain request
without valid C{Proxy-Authorization: Basic ...} is answered
C{407 Proxy Authentication Required} with
C{Proxy-Authenticate: Basic realm="interceptor"} (a CONNECT's connection is
closed after it); requests inside a tunnel whose CONNECT was authenticated
pass.  In reverse mode the proxy is the server: C{401} and
C{WWW-Authenticate}, checking C{Authorization}.  Valid credentials are
removed from the request before it goes on.  SOCKS5 clients authenticate
with the username/password method, checked by the SOCKS5 layer with the
same option.  Transparent mode cannot ask clients for credentials: the
option is refused there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.access import IValidator, check_credentials, parse_basic, validator_for
from interceptor.core.interfaces import IClientDisconnect, IConfigure, IHTTPConnect, IRequestHeaders
from interceptor.core.options import OptionsError
from interceptor.model.connection import ClientConnection
from interceptor.model.http import Response
from interceptor.transport.modes import parse_mode, proxy_authorization

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options
    from interceptor.model.flow import HTTPFlow

__all__ = ["ProxyAuth", "REALM"]

_log = Logger(namespace="interceptor.proxyauth")

REALM = "interceptor"


@implementer(IConfigure)
class ProxyAuth:
    """
    Checks the credentials of HTTP requests and CONNECTs.

    @ivar validator: The L{IValidator} of the current C{proxyauth}, or None
        when it is unset.
    @ivar authenticated: The client connections whose CONNECT carried valid
        credentials, with the username (the requests in their tunnel
        pass).
    @ivar checks: The addon with the hooks, nested under this one only
        while C{proxyauth} is set: unset, no request pays for a check.
    """

    name = "proxyauth"

    def __init__(self) -> None:
        self.master: Optional[Master] = None
        self.validator: Optional[IValidator] = None
        self.mode = "regular"
        self.authenticated: dict[ClientConnection, str] = {}
        self.checks = _Checks(self)

    def load(self, loader: Loader) -> None:
        """
        Declare C{proxyauth}.
        """
        self.master = loader.master
        loader.add_option(
            "proxyauth",
            Optional[str],
            None,
            "Require credentials from clients: USER:PASS, @PATH to an htpasswd file "
            "(bcrypt or SHA-1 entries), or 'any' to take any; regular and upstream mode "
            "answer 407, reverse mode 401, SOCKS5 uses its username/password method.",
        )

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Build the validator of C{proxyauth}.

        @raise OptionsError: The value is not one of the forms, the htpasswd
            file is unusable, or the mode is transparent.
        """
        if not {"proxyauth", "mode"} & updated:
            return
        self.mode = parse_mode(options.mode).kind
        spec = options.proxyauth
        if not spec:
            self.validator = None
            self.authenticated.clear()
        elif self.mode == "transparent":
            raise OptionsError("option proxyauth: transparent mode cannot ask clients for credentials")
        else:
            try:
                self.validator = validator_for(spec)
            except ValueError as e:
                raise OptionsError(f"option proxyauth: {e}") from None
        if self.master is not None:
            # (The hooks are in the chain while there is something to check.)
            self.master.addons.nest(self.checks, self, self.validator is not None)

    def check_connect(self, flow: HTTPFlow) -> Optional[Deferred[None]]:
        """
        A CONNECT must carry valid credentials; its tunnel is then
        authenticated.
        """
        if self.validator is None or self.mode not in ("regular", "upstream"):
            return None
        return self._authenticate(flow, remember=True)

    def check_request(self, flow: HTTPFlow) -> Optional[Deferred[None]]:
        """
        A request must carry valid credentials, unless its tunnel's CONNECT
        did (SOCKS5 clients authenticated in the SOCKS5 handshake).
        """
        if self.validator is None or self.mode == "socks5" or flow.response is not None:
            return None
        if flow.is_replay or not flow.live:
            # (A replayed or loaded flow comes from the proxy's user, not
            # from a client, as mitmproxy's proxyauth lets replays by.)
            return None
        if flow.client_conn in self.authenticated:
            return None
        return self._authenticate(flow, remember=False)

    def forget(self, root_layer: Any) -> None:
        """
        Forget a closed connection's authentication.
        """
        self.authenticated.pop(root_layer.client_conn, None)

    def _authenticate(self, flow: HTTPFlow, remember: bool) -> Deferred[None]:
        validator = self.validator
        master = self.master
        assert validator is not None and master is not None  # (checked by the hooks; load set it)
        proxy = self.mode != "reverse"
        header = "Proxy-Authorization" if proxy else "Authorization"
        credentials = parse_basic(flow.request.headers.get(header))
        if credentials is None:
            self._refuse(flow, proxy, f"no Basic credentials in {header}")
            return succeed(None)
        username, password = credentials

        def checked(valid: bool) -> None:
            if not valid:
                self._refuse(flow, proxy, f"wrong credentials for user {username!r}")
                return
            headers = flow.request.headers
            del headers[header]
            if remember:
                self.authenticated[flow.client_conn] = username
            elif self.mode == "upstream" and flow.request.scheme == "http":
                # Plain requests go to the upstream proxy: its credentials,
                # not the client's (the HTTP layer leaves them to this
                # addon when it checks the client's).
                upstream = proxy_authorization(master.options.upstream_auth)
                if upstream is not None:
                    headers[b"Proxy-Authorization"] = upstream

        return check_credentials(master.reactor, validator, username, password).addCallback(checked)

    def _refuse(self, flow: HTTPFlow, proxy: bool, why: str) -> None:
        status = 407 if proxy else 401
        challenge = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        reason = "Proxy Authentication Required" if proxy else "Unauthorized"
        _log.info(
            "{client}: {status} {reason}: {url}: {why}",
            client=flow.client_conn.address,
            status=status,
            reason=reason,
            url=flow.request.url if flow.request.method != "CONNECT" else flow.request.authority,
            why=why,
        )
        flow.response = Response.make(
            status,
            f"{status} {reason}\nThis proxy requires credentials ({why}).\n",
            {challenge: f'Basic realm="{REALM}"', "Content-Type": "text/plain; charset=utf-8"},
        )


@implementer(IHTTPConnect, IRequestHeaders, IClientDisconnect)
class _Checks:
    """
    L{ProxyAuth}'s hooks, nested under it while C{proxyauth} is set.
    """

    name = "proxyauth.checks"

    def __init__(self, owner: ProxyAuth) -> None:
        self.owner = owner

    def http_connect(self, flow: HTTPFlow) -> Optional[Deferred[None]]:
        """
        See L{ProxyAuth.check_connect}.
        """
        return self.owner.check_connect(flow)

    def requestheaders(self, flow: HTTPFlow) -> Optional[Deferred[None]]:
        """
        See L{ProxyAuth.check_request}.
        """
        return self.owner.check_request(flow)

    def clientdisconnect(self, root_layer: Any) -> None:
        """
        See L{ProxyAuth.forget}.
        """
        self.owner.forget(root_layer)
