# -*- test-case-name: tests.test_tap -*-
"""
The default addon chain of C{twistd interceptor}: the only place the core
imports the built-in addons.
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_addons"]


def default_addons() -> list[Any]:
    """
    New instances of the built-in addons, in chain order.
    """
    from addons.block import Block
    from addons.dumper import Dumper
    from addons.loopdetect import LoopDetect
    from addons.onboarding import Onboarding
    from addons.proxyauth import ProxyAuth
    from addons.script import ScriptLoader
    from addons.termlog import TermLog
    from addons.tlsconfig import TlsConfig

    # Access control first: a refused client or request reaches no other addon.
    return [
        TermLog(),
        Block(),
        LoopDetect(),
        ProxyAuth(),
        TlsConfig(),
        Onboarding(),
        ScriptLoader(),
        Dumper(),
    ]
