# -*- test-case-name: tests.test_tap -*-
"""
The L{IService} that runs a L{Master} and its listening ports, as
C{twistd interceptor} does; usable in any Twisted application::

    svc = ProxyService(Master(proxy_options()), ["tcp:8080:interface=127.0.0.1"])
    svc.setServiceParent(application)

Under C{twistd}, the service also answers C{SIGTERM} with a clean stop:
every addon's C{done()} runs, the ports close, and the process exits with
status 0 (Twisted's own handler would make it exit by the signal).
"""

from __future__ import annotations

import signal
from typing import Any, Optional, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, FirstError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from interceptor.core.master import Master
from interceptor.transport.fast.exitsignal import forget_exit_signal

__all__ = ["ProxyService"]

_log = Logger(namespace="interceptor.service")


class ProxyService(Service):
    """
    Starts the master and listens on each endpoint string when the service
    starts; stops both (waiting for every addon's C{done()}) when it stops.
    A listening failure is logged and stops the reactor.

    @ivar listening: Fires with the listening ports once every endpoint
        listens (with None when one failed).
    @ivar clean_sigterm: Whether C{SIGTERM} stops the reactor without
        making the process exit by the signal (C{twistd interceptor} sets
        it; an application embedding the service keeps its own handling).
    """

    name = "interceptor"

    def __init__(
        self, master: Master, listen: Sequence[str], clean_sigterm: bool = False
    ) -> None:
        self.master = master
        self.listen = list(listen)
        self.listening: Deferred[Optional[list[IListeningPort]]] = Deferred()
        self.clean_sigterm = clean_sigterm

    def startService(self) -> None:
        """
        Start the master, then listen on every endpoint.
        """
        Service.startService(self)
        if self.clean_sigterm:
            # Now (twistd starts services before the reactor runs, and a
            # SIGTERM may come at once), and again right after the reactor
            # has installed its own handlers in the "during startup" phase.
            self._install_sigterm()
            reactor = self.master.reactor
            if not getattr(reactor, "running", False):
                reactor.addSystemEventTrigger("during", "startup", self._install_sigterm)
        self.master.start()
        attempts = [self.master.listen(description) for description in self.listen]
        d = DeferredList(attempts, fireOnOneErrback=True, consumeErrors=True)
        d.addCallbacks(
            lambda results: [port for _, port in results], self._listen_failed
        ).chainDeferred(self.listening)

    def _install_sigterm(self) -> None:
        signal.signal(signal.SIGTERM, self._sigterm)

    def _sigterm(self, signum: int, frame: Any) -> None:
        # Called between two bytecodes of the reactor thread: hand over to
        # the reactor as Twisted's own handler does.  A second SIGTERM, while
        # the shutdown is still waiting for addons, kills the process.
        reactor = self.master.reactor
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        reactor.callFromThread(_log.info, "Received SIGTERM, shutting down.")
        reactor.callFromThread(reactor.stop)

    def _listen_failed(self, failure: Failure) -> None:
        value = failure.value
        error = value.subFailure if isinstance(value, FirstError) else failure
        _log.error("Cannot listen: {error}", error=error.getErrorMessage())
        reactor = self.master.reactor
        if getattr(reactor, "running", False):
            reactor.stop()
        else:
            # twistd starts services before running the reactor.
            reactor.callWhenRunning(reactor.stop)
        return None

    def stopService(self) -> Deferred[None]:
        """
        Stop the master; the returned Deferred fires when it has stopped.
        """
        Service.stopService(self)
        if self.clean_sigterm:
            # A SIGTERM caught by the reactor's own handler in the instant
            # between its installation and ours would make twistd exit by
            # the signal; this stop is clean, so forget it.
            forget_exit_signal(self.master.reactor, signal.SIGTERM)
        return self.master.stop()
