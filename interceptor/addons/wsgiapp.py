# -*- test-case-name: tests.compat.test_layers16 -*-
"""
L{WSGIApp}: an addon answering the requests to one virtual host:port with a
WSGI application, without contacting any server (mitmproxy's
C{mitmproxy.addons.wsgiapp.WSGIApp})::

    from flask import Flask
    from interceptor.addons import wsgiapp

    app = Flask("proxapp")

    @app.route("/")
    def hello():
        return "Hello World!"

    addons = [wsgiapp.WSGIApp(app, "proxapp", 80)]

The application runs in Twisted's own WSGI container
(L{twisted.web.wsgi.WSGIResource}: the app is called in the reactor's
thread pool, its C{start_response} and writes come back to the reactor
thread).  That container serves a twisted.web request; L{FlowRequest} is
the part of L{twisted.web.iweb.IRequest} it uses, made from a flow's
request and gathering the answer into the flow's response.
"""

from __future__ import annotations

import io
import time
import urllib.parse
from http import HTTPStatus
from typing import Any, Callable, Iterable, Optional

from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.http_headers import Headers as WebHeaders
from twisted.web.wsgi import WSGIResource

from interceptor.core.addonmanager import Loader
from interceptor.core.options import Options, parse_size
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Headers, Response

__all__ = ["FlowRequest", "WSGIApp"]

_log = Logger()

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
"""A WSGI application callable (PEP 3333)."""


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


class FlowRequest:
    """
    A flow's request as L{twisted.web.wsgi.WSGIResource} reads a twisted.web
    request, and the response it writes, kept to become the flow's.

    @ivar flow: The flow being answered.
    @ivar done: Fires with the L{Response} once the application finished
        (a 500 if it failed, a 502 if its body outgrew C{limit}).
    @ivar limit: The most body bytes taken from the application, or None.
    """

    defaultContentType: Optional[bytes] = None

    def __init__(self, flow: HTTPFlow, limit: Optional[int] = None) -> None:
        request = flow.request
        self.flow = flow
        self.limit = limit
        self.done: Deferred[Response] = Deferred()
        raw_path = request.path.encode("utf-8", "surrogateescape")
        self.uri = raw_path
        self.prepath: list[bytes] = []
        path = raw_path.split(b"?", 1)[0]
        # As twisted.web does: PATH_INFO is the path's segments, unquoted.
        self.postpath = [urllib.parse.unquote_to_bytes(s) for s in path[1:].split(b"/")]
        self.method = request.method.encode("ascii", "replace")
        version = request.http_version
        self.clientproto = ("HTTP/1.1" if version.startswith("HTTP/2") else version).encode()
        self.requestHeaders = WebHeaders()
        for name, value in request.headers.fields:
            self.requestHeaders.addRawHeader(name, value)
        self.content = io.BytesIO(request.raw_content or b"")
        self.code = 200
        self.code_message = b""
        self.responseHeaders = WebHeaders()
        self._body: list[bytes] = []
        self._size = 0
        self._finished: list[Deferred[None]] = []

    # -- what WSGIResource reads ----------------------------------------------

    def getClientAddress(self) -> IPv4Address | IPv6Address:
        """
        The client's address (C{REMOTE_ADDR}, C{REMOTE_PORT}).
        """
        address = self.flow.client_conn.address or ("0.0.0.0", 0)
        return _address(str(address[0]), int(address[1]))

    def getHost(self) -> IPv4Address | IPv6Address:
        """
        The virtual server's address (C{SERVER_PORT}).
        """
        return _address(self.flow.request.host, self.flow.request.port)

    def getRequestHostname(self) -> bytes:
        """
        The host the client asked for (C{SERVER_NAME}).
        """
        return self.flow.request.pretty_host.encode("idna")

    def getHeader(self, name: bytes) -> Optional[bytes]:
        """
        The last value of request header C{name}, or None.
        """
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None

    def isSecure(self) -> bool:
        """
        Whether the request came over HTTPS (C{wsgi.url_scheme}).
        """
        return self.flow.request.scheme == "https"

    def notifyFinish(self) -> Deferred[None]:
        """
        A Deferred fired once the response is complete (the application
        stops being iterated then).
        """
        d: Deferred[None] = Deferred()
        if self.done.called:
            d.callback(None)
        else:
            self._finished.append(d)
        return d

    # -- what WSGIResource writes -------------------------------------------

    def setResponseCode(self, code: int, message: Optional[bytes] = None) -> None:
        """
        The status the application chose.
        """
        self.code = code
        self.code_message = message or b""

    def write(self, data: bytes) -> None:
        """
        A piece of the body; past C{limit} the application is stopped and the
        flow answered with a 502.
        """
        if self.done.called:
            return
        self._size += len(data)
        if self.limit is not None and self._size > self.limit:
            self._body = []
            self._complete(Response.make(
                502, f"WSGI application response body larger than {self.limit} bytes "
                "(option body_size_limit)\n",
            ))
            return
        self._body.append(data)

    def finish(self) -> None:
        """
        The application is done: the flow's response is complete.
        """
        if self.done.called:
            return
        fields = [
            (name, value)
            for name, values in self.responseHeaders.getAllRawHeaders()
            for value in values
        ]
        # The body as the application wrote it (already content-encoded, if
        # its headers say so); the proxy frames it.
        reason = self.code_message.decode("latin-1") or _phrase(self.code)
        now = time.time()
        response = Response(
            "HTTP/1.1", self.code, reason, Headers(fields), b"".join(self._body), now, now
        )
        self._complete(response)

    def loseConnection(self) -> None:
        """
        The application failed after it had started its response.
        """
        self._complete(Response.make(500, "WSGI application error (after the response started)\n"))

    def _complete(self, response: Response) -> None:
        if self.done.called:
            return
        self._body = []
        self.done.callback(response)
        waiting, self._finished = self._finished, []
        for d in waiting:
            d.callback(None)


class WSGIApp:
    """
    An addon serving the requests to C{host}:C{port} with a WSGI app: their
    C{request} hook waits for the app, which gives the flow its response;
    no server is contacted.

    @ivar app: The WSGI application.
    @ivar host: The virtual host name, compared with the request's
        C{pretty_host} (its Host header first).
    @ivar port: The port, or None for any.
    """

    def __init__(self, app: WSGIApplication, host: str, port: Optional[int]) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._options: Optional[Options] = None
        self._resource = WSGIResource(reactor, reactor.getThreadPool(), app)  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        """
        The addon's name in the chain, one per virtual host.
        """
        return f"wsgiapp:{self.host}:{self.port}"

    def load(self, loader: Loader) -> None:
        """
        Keep the options, for C{body_size_limit}.
        """
        self._options = loader.master.options

    def should_serve(self, flow: HTTPFlow) -> bool:
        """
        Whether C{flow} is for this app and still waits for an answer.
        """
        request = flow.request
        return bool(
            request.pretty_host == self.host
            and (self.port is None or request.port == self.port)
            and flow.live
            and not flow.error
            and not flow.response
        )

    def request(self, flow: HTTPFlow) -> Optional[Deferred[None]]:
        """
        Answer a request to this app's host.
        """
        if not self.should_serve(flow):
            return None
        limit = None
        if self._options is not None and "body_size_limit" in self._options:
            limit = parse_size(self._options.body_size_limit)
        request = FlowRequest(flow, limit)
        self._resource.render(request)

        def answered(response: Response) -> None:
            flow.response = response

        return request.done.addCallback(answered)
