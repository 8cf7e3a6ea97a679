"""
interceptor: an intercepting proxy built natively on Twisted.

The public modules (C{interceptor.http}, C{interceptor.ctx}, ...) are
imported when first named, also as attributes of the package, as scripts
written for mitmproxy do (C{import mitmproxy} then C{mitmproxy.ctx.log(...)}).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    # PEP 562: C{interceptor.ctx} without an import of its own.
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
