"""
The context of addon scripts, as mitmproxy's C{ctx}::

    from interceptor import ctx

    def request(flow):
        if ctx.options.block_everything:
            ctx.log.warn("blocked " + flow.request.url)
            ctx.master.commands.call("replay.client.stop")

C{ctx.master} is the running L{interceptor.master.Master} (see
L{interceptor.core.context} for which one when a process runs several),
C{ctx.options} its options, and C{ctx.log} mitmproxy's deprecated logger
(C{info}, C{warn}, C{error}, C{debug}, C{alert}), which writes to Python's
C{logging}, as new scripts should do themselves.  Reading C{ctx.master} or
C{ctx.options} while no master runs raises C{AttributeError}.
"""

from __future__ import annotations

from typing import Any

from interceptor.core import context as _context
from interceptor.core.log import ScriptLog

# (master and options come from __getattr__, so that they are always current.)
__all__ = ["log"]

log = ScriptLog()
"""Deprecated in mitmproxy too: use Python's C{logging} module."""


def __getattr__(name: str) -> Any:
    if name not in ("master", "options"):
        raise AttributeError(f"module 'interceptor.ctx' has no attribute {name!r}")
    master = _context.current
    if master is None:
        raise AttributeError(f"ctx.{name}: no proxy is running (it is set once a master starts)")
    return master if name == "master" else master.options
