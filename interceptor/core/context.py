# -*- test-case-name: tests.compat.test_runtime -*-
"""
Which master C{interceptor.ctx} refers to.

The rule: C{ctx} is the master whose addons are running a hook right now;
outside hooks, the master started most recently of those still running.
A master sets itself when it starts and whenever its addon manager delivers
an event or adds addons (their C{start()} and C{load()} are hooks too), so in a process with several masters (a trial suite) a hook
always sees its own master.  When a master stops, C{ctx} goes back to the
most recently started one still running, or to none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from interceptor.core.master import Master

__all__ = ["current", "activate", "started", "stopped"]

current: Optional[Master] = None
"""The master C{ctx} refers to, or None."""

_running: list[Master] = []


def activate(master: Optional[Master]) -> None:
    """
    Make C{ctx} refer to C{master} (its addons are about to run a hook).
    """
    global current
    current = master


def started(master: Master) -> None:
    """
    C{master} has started: it is C{ctx} until another starts or runs a hook.
    """
    if not any(each is master for each in _running):
        _running.append(master)
    activate(master)


def stopped(master: Master) -> None:
    """
    C{master} has stopped: C{ctx} goes back to the most recently started
    master still running, or to none.
    """
    _running[:] = [each for each in _running if each is not master]
    if current is master:
        activate(_running[-1] if _running else None)
