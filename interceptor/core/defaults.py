# -*- test-case-name: tests.test_tap -*-
"""
The default addon chain of C{twistd interceptor}: the only place the core
imports the built-in addons.
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_addons"]


def default_addons(flows_to_log: bool = False) -> list[Any]:
    """
    New instances of the built-in addons, in chain order; the dumper writes
    the flows to the Twisted log instead of stdout if C{flows_to_log}
    (C{twistd} without C{-n}).
    """
    from addons.block import Block
    from addons.clientplayback import ClientPlayback
    from addons.core import Inject, View
    from addons.dumper import Dumper
    from addons.loopdetect import LoopDetect
    from addons.onboarding import Onboarding
    from addons.proxyauth import ProxyAuth
    from addons.readfile import ReadFile
    from addons.save import Save
    from addons.savehar import SaveHar
    from addons.script import ScriptLoader
    from addons.serverplayback import ServerPlayback
    from addons.termlog import TermLog
    from addons.tlsconfig import TlsConfig

    # Access control first: a refused client or request reaches no other addon.
    # Scripts before server replay (as mitmproxy): a script's answer wins;
    # the recorders after both, so they keep what the addons made of a flow.
    return [
        TermLog(),
        Block(),
        LoopDetect(),
        ProxyAuth(),
        TlsConfig(),
        Onboarding(),
        ScriptLoader(),
        ServerPlayback(),
        ClientPlayback(),
        ReadFile(),
        Save(),
        SaveHar(),
        Dumper(to_log=flows_to_log),
        Inject(),
        View(),
    ]
