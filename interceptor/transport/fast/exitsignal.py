# -*- test-case-name: tests.test_fastpaths,tests.test_tap -*-
"""
Forgetting a C{SIGTERM} that Twisted's own handler caught, when the stop
is clean.

    forget_exit_signal(reactor, signal.SIGTERM)

Under C{twistd}, L{interceptor.core.service.ProxyService} answers C{SIGTERM}
with a clean stop (exit status 0).  A C{SIGTERM} caught by the reactor's
own handler in the instant between its installation and the service's
makes twistd exit by the signal after the stop; Twisted keeps that signal
in the reactor's private C{_exitSignal}.  This clears it.  With the fast
paths off (L{interceptor.transport.fast.enabled}) it does nothing: twistd
then exits by the signal in that rare case.
"""

from __future__ import annotations

from typing import Any

from interceptor.transport.fast import enabled

__all__ = ["forget_exit_signal"]


def forget_exit_signal(reactor: Any, signum: int) -> bool:
    """
    If C{reactor} caught C{signum} with Twisted's handler, forget it.

    @return: Whether it was forgotten.
    """
    if not enabled() or getattr(reactor, "_exitSignal", None) != signum:
        return False
    reactor._exitSignal = None
    return True
