# -*- test-case-name: tests.test_tap -*-
"""
The L{IService} that runs a L{Master} and its listening ports, as
C{twistd interceptor} does; usable in any Twisted application::

    svc = ProxyService(Master(proxy_options()), ["tcp:8080:interface=127.0.0.1"])
    svc.setServiceParent(application)

Under C{twistd}, the service also answers C{SIGTERM} with a clean stop:
every addon's C{done()} runs, the ports close, and the process exits with
status 0 (Twisted's own handler would make it exit by the signal).  And a
proxy that cannot start (an option an addon refuses, such as an unusable
C{confdir}; a port it cannot listen on) logs one line saying why and makes
C{twistd} exit with status 1 (C{exit_on_failure}).
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
from interceptor.core.options import OptionsError
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
    @ivar exit_on_failure: Whether a proxy that cannot start (the master
        refuses its options, an endpoint fails to listen while the service
        starts) raises C{SystemExit(1)} from L{startService} once the reason
        is logged, so that C{twistd} exits with status 1 before running the
        reactor (C{twistd interceptor} sets it).  Otherwise the master's
        L{OptionsError} is raised, and a listening failure stops the
        reactor.
    """

    name = "interceptor"

    def __init__(
        self,
        master: Master,
        listen: Sequence[str],
        clean_sigterm: bool = False,
        exit_on_failure: bool = False,
    ) -> None:
        self.master = master
        self.listen = list(listen)
        self.listening: Deferred[Optional[list[IListeningPort]]] = Deferred()
        self.clean_sigterm = clean_sigterm
        self.exit_on_failure = exit_on_failure
        # Whether startService is opening the ports, and whether one failed
        # then (Twisted's TCP, SSL and UNIX endpoints fail at once).
        self._starting = False
        self._failed = False

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
        try:
            self.master.start()
        except OptionsError as e:
            _log.error("Cannot start: {error}", error=str(e))
            if self.exit_on_failure:
                raise SystemExit(1) from None
            raise
        self._starting = True
        attempts = [self.master.listen(description) for description in self.listen]
        d = DeferredList(attempts, fireOnOneErrback=True, consumeErrors=True)
        d.addCallbacks(
            lambda results: [port for _, port in results], self._listen_failed
        ).chainDeferred(self.listening)
        self._starting = False
        if self._failed and self.exit_on_failure:
            # (twistd has not run the reactor yet: it exits with this status.)
            raise SystemExit(1)

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
        self._failed = self._starting
        value = failure.value
        if isinstance(value, FirstError):
            where = f" on {self.listen[value.index]}"
            error = value.subFailure
        else:
            where, error = "", failure
        _log.error("Cannot listen{where}: {error}", where=where, error=error.getErrorMessage())
        if self._failed and self.exit_on_failure:
            # (startService raises SystemExit next.)
            return None
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
