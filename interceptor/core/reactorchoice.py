# -*- test-case-name: tests.test_reactorchoice,tests.compat.test_asyncio -*-
"""
Which reactor C{twistd interceptor} runs on: Twisted's asyncio reactor when
an addon script needs asyncio, the platform's default (epoll on Linux)
otherwise.

    if scripts_need_asyncio(["fetch.py"]):
        install_asyncio_reactor()

asyncio code in a hook (C{await asyncio.sleep(1)}, C{asyncio.create_task},
libraries built on asyncio) runs only while an asyncio event loop turns,
which is the case on the asyncio reactor alone; that reactor costs the hot
path some speed (see docs/design.md, "asyncio in hooks"), so the proxy
takes it only for the scripts that need it.  A script needs it when it
imports C{asyncio} or defines an C{async def} function: read from the
script's source, before anything installs a reactor.  A script that only
reaches asyncio through another module it imports is not seen; such a
setup, like any other, may name the reactor itself: C{twistd -r asyncio
interceptor ...} (or C{-r epoll} to keep the default), which wins because
twistd installs it before this is asked.
"""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from typing import Iterable, Optional

from interceptor.core.scriptentry import split_script_entry

__all__ = ["scripts_need_asyncio", "install_asyncio_reactor", "reactor_installed"]


def reactor_installed() -> bool:
    """
    Whether a reactor is installed already (by C{twistd -r}, or by an
    import of C{twisted.internet.reactor}).
    """
    return "twisted.internet.reactor" in sys.modules


def scripts_need_asyncio(specs: Iterable[str]) -> bool:
    """
    Whether any of the scripts needs asyncio (imports it, or defines an
    C{async def} function).

    @param specs: C{--addon} values: a path, possibly followed by the
        script's arguments.  A script that cannot be read or parsed does
        not count: the script loader reports it when it loads it.
    """
    return any(_needs_asyncio(path) for spec in specs if (path := _script_path(spec)))


def _script_path(spec: str) -> Optional[str]:
    path, _ = split_script_entry(spec)
    return os.path.expanduser(path) if path else None


def _needs_asyncio(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.AsyncFunctionDef, ast.Await)):
            return True
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == "asyncio" for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "asyncio":
            return True
    return False


def install_asyncio_reactor() -> None:
    """
    Install Twisted's asyncio reactor on a new event loop, which becomes
    the current loop (what C{asyncio.get_event_loop()} gives scripts).

    @raise twisted.internet.error.ReactorAlreadyInstalledError: A reactor
        is installed already.
    """
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
