# -*- test-case-name: tests.e2e.test_loops -*-
"""
Answers 508 Loop Detected to a request that would come back to this proxy,
instead of letting one request turn into thousands of connections:

    - its next hop is one of the proxy's own listening addresses
      (C{--mode reverse:http://127.0.0.1:OWN_PORT}, or an upstream proxy that
      is the proxy itself);
    - or it carries this proxy's own C{Via} entry: it went out through the
      proxy and came back through another one (an upstream proxy whose
      parent is this proxy, a server that forwards to it).

Every request the proxy forwards gets a C{Via} entry naming the protocol it
came in with and a pseudonym of this proxy instance (RFC 9110, 7.6.3)::

    Via: 1.1 interceptor-5f0c9a2e

The connection itself is refused by the transport in any case
(L{interceptor.transport.loops}); this addon makes it a 508 the client
understands, before any connection is tried.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Optional

from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.interfaces import IRequestHeaders
from interceptor.model.http import Response
from interceptor.transport.loops import loop_message, own_address
from interceptor.transport.modes import parse_mode

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.model.flow import HTTPFlow

__all__ = ["LoopDetect"]

_log = Logger(namespace="interceptor.loopdetect")


@implementer(IRequestHeaders)
class LoopDetect:
    """
    Marks forwarded requests with C{Via} and answers 508 to a loop.

    @ivar pseudonym: This proxy's name in C{Via} (random per instance, so
        that two proxies chained on purpose tell themselves apart).
    """

    name = "loopdetect"

    def __init__(self) -> None:
        self.master: Optional[Master] = None
        self.pseudonym = f"interceptor-{secrets.token_hex(4)}"

    def load(self, loader: Loader) -> None:
        """
        Remember the master whose listening addresses count as its own.
        """
        self.master = loader.master

    def requestheaders(self, flow: HTTPFlow) -> None:
        """
        Answer 508 to a loop; otherwise add this proxy's C{Via} entry.
        """
        if flow.response is not None:
            return
        request = flow.request
        detail = self._loop(flow)
        if detail is not None:
            _log.warn(
                "{client}: 508 Loop Detected: {url}: {detail}",
                client=flow.client_conn.address,
                url=request.url,
                detail=detail,
            )
            flow.response = Response.make(
                508,
                f"508 Loop Detected\n{detail}\n",
                {"Content-Type": "text/plain; charset=utf-8"},
            )
            return
        version = request.http_version.removeprefix("HTTP/")
        request.headers.add("Via", f"{'2' if version == '2.0' else version} {self.pseudonym}")

    def _loop(self, flow: HTTPFlow) -> Optional[str]:
        """
        Why C{flow}'s request is a loop, or None.
        """
        request = flow.request
        for value in request.headers.get_all("via"):
            for entry in value.split(","):
                received_by = entry.split()[1:2]
                if received_by == [self.pseudonym]:
                    return f"the request came back to this proxy (Via: {value.strip()[:200]})"
        master = self.master
        if master is None:
            return None
        mode = parse_mode(master.options.mode)
        host, port = (
            mode.address
            if mode.kind == "upstream" and mode.address is not None
            else (request.host, request.port)
        )
        if own_address(master.ports, host, port):
            return loop_message(host, port)
        return None
