# -*- test-case-name: tests.test_tap -*-
"""
The L{IService} that runs a L{Master} and its listening ports, as
C{twistd interceptor} does; usable in any Twisted application::

    from twisted.application.service import MultiService
    svc = ProxyService(Master(proxy_options()), ["tcp:8080:interface=127.0.0.1"])
    svc.setServiceParent(application)
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure

from interceptor.master import Master

__all__ = ["ProxyService"]

_log = Logger(namespace="interceptor.service")


class ProxyService(Service):
    """
    Starts the master and listens on each endpoint string when the service
    starts; stops both (waiting for every addon's C{done()}) when it stops.
    A listening failure is logged and stops the reactor.
    """

    name = "interceptor"

    def __init__(self, master: Master, listen: Sequence[str]) -> None:
        self.master = master
        self.listen = list(listen)
        self.listening: Deferred = Deferred()

    def startService(self) -> None:
        """
        Start the master, then listen on every endpoint.
        """
        Service.startService(self)
        self.master.start()
        attempts = [self.master.listen(description) for description in self.listen]
        d = DeferredList(attempts, fireOnOneErrback=True, consumeErrors=True)
        d.addCallbacks(lambda results: [port for _, port in results], self._listen_failed)
        d.chainDeferred(self.listening)

    def _listen_failed(self, failure: Failure) -> None:
        error = failure.value.subFailure if hasattr(failure.value, "subFailure") else failure
        _log.error("Cannot listen: {error}", error=error.getErrorMessage())
        self.master.reactor.stop()
        return None

    def stopService(self) -> Deferred:
        """
        Stop the master; the returned Deferred fires when it has stopped.
        """
        Service.stopService(self)
        return self.master.stop()
