# -*- test-case-name: tests.e2e.test_loops -*-
"""
Answers 508 Loop Detected to a request that comes back to this proxy
through another one, instead of letting one request turn into thousands of
connections: it carries this proxy's own C{Via} entry (it went out through
the proxy and came back: an upstream proxy whose parent is this proxy, a
server that forwards to it).

Every request the proxy forwards gets a C{Via} entry naming the protocol it
came in with and a pseudonym of this proxy instance (RFC 9110, 7.6.3)::

    Via: 1.1 interceptor-5f0c9a2e

A request whose next hop is one of the proxy's own listening addresses
(C{--mode reverse:http://127.0.0.1:OWN_PORT}, an upstream proxy that is
the proxy itself) never gets a connection: the transport refuses it
(L{interceptor.transport.loops}) and the exchange answers 508, with or
without this addon, and without a look at every request.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Optional

from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.interfaces import IRequestHeaders
from interceptor.model.http import Request, Response

if TYPE_CHECKING:
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
        self.pseudonym = f"interceptor-{secrets.token_hex(4)}"
        # The entry for each usual request version, made once.
        self._via = {
            f"HTTP/{version}": f"{entry} {self.pseudonym}".encode()
            for version, entry in (("1.1", "1.1"), ("1.0", "1.0"), ("2.0", "2"), ("2", "2"))
        }

    def requestheaders(self, flow: HTTPFlow) -> None:
        """
        Answer 508 to a loop; otherwise add this proxy's C{Via} entry.
        """
        if flow.response is not None or not flow.live:
            # (Answered already, or loaded from a file: nothing is sent.)
            return
        request = flow.request
        detail = self._loop(flow)
        if flow.is_replay == "request":
            # A recorded request sent again carries the Via entry it went
            # out with: not a loop, and not to be marked twice.
            if detail is None:
                self._mark(request)
            return
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
        self._mark(request)

    def _mark(self, request: Request) -> None:
        """
        Add this proxy's C{Via} entry.
        """
        via = self._via.get(request.http_version)
        if via is None:
            version = request.http_version.removeprefix("HTTP/")
            via = f"{'2' if version == '2.0' else version} {self.pseudonym}".encode()
        request.headers.add(b"Via", via)

    def _loop(self, flow: HTTPFlow) -> Optional[str]:
        """
        Why C{flow}'s request is a loop, or None.
        """
        for value in flow.request.headers.get_all("via"):
            for entry in value.split(","):
                received_by = entry.split()[1:2]
                if received_by == [self.pseudonym]:
                    return f"the request came back to this proxy (Via: {value.strip()[:200]})"
        return None
