# -*- test-case-name: tests.test_tap,tests.e2e.test_cli -*-
"""
The command line of C{twistd interceptor}::

    twistd -n interceptor                                   # tcp:8080:interface=127.0.0.1
    twistd -n interceptor --listen tcp:0:interface=127.0.0.1 \\
        --addon examples/add_header.py --set stream_large_bodies=1m -v
    twistd -n interceptor -w flows.bin '~d example.org & !~a'  # record, print a filtered view
    twistd -n interceptor -C flows.bin                      # replay the requests (client replay)
    twistd -n interceptor -S flows.bin                      # answer from them (server replay)

The flags of mitmdump's flows map to options: C{-w} C{save_stream_file},
C{-r} C{rfile}, C{-C} C{client_replay}, C{-S} C{server_replay}, and the
words after the flags, a filter expression, C{dumper_filter}.

C{makeService(config)} returns the L{ProxyService}.  C{-q} and C{-v} map to
options: C{-q} sets C{flow_detail=0} and C{termlog_verbosity=warn}, C{-v}
sets C{flow_detail=2}, C{-vv} C{flow_detail=3} and
C{termlog_verbosity=debug}; an explicit C{--set} wins over both.

A usage error under twistd prints one line saying what is wrong (with the
closest names for a misspelt flag or option) and a hint where the help is,
not the whole help, and exits with status 2.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Optional, Sequence

from twisted.python import usage

from interceptor.transport.fast.allocator import keep_freed_memory
from interceptor.core.defaults import default_addons
from interceptor.core.master import Master, server_endpoint
from interceptor.core.scriptentry import split_script_entry
from interceptor.core.options import OptionsError, did_you_mean, proxy_options
from interceptor.core.reactorchoice import (
    install_asyncio_reactor,
    reactor_installed,
    scripts_need_asyncio,
)
from interceptor.core.service import ProxyService

__all__ = ["Options", "makeService", "DEFAULT_LISTEN"]

DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"

USAGE_HINT = (
    "Run 'twistd interceptor --help' for the command line, "
    "'twistd interceptor --options' for every option --set takes."
)

_UNKNOWN_FLAG = re.compile(r"^option (-{1,2}[^ ]+) not recognized$")


def _check_endpoint(description: str) -> None:
    """
    A usage error for an endpoint string Twisted cannot parse (instead of
    a traceback when the service starts).
    """
    from twisted.internet import reactor

    try:
        server_endpoint(reactor, description)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise usage.UsageError(f"--listen {description}: {e}") from None

class Options(usage.Options):
    """
    Options of C{twistd interceptor}; every proxy option is also reachable
    with C{--set NAME=VALUE} (C{--options} lists them).
    """

    synopsis = "[options] [filter expression]"
    longdesc = (
        "Run an intercepting proxy.  --listen takes Twisted endpoint strings "
        f"(default {DEFAULT_LISTEN}); --set NAME=VALUE sets any option."
    )
    optParameters = [
        ["confdir", None, None, "Directory for the CA and other state (default ~/.interceptor)."],
        ["mode", "m", None, "Proxy mode (default regular)."],
        ["save-stream-file", "w", None, "Write every finished flow to this flow file (+PATH appends)."],
        ["rfile", "r", None, "Load the flows of this file (flow file or HAR) at start."],
    ]
    optFlags = [
        ["quiet", "q", "Print no flows and only warnings and errors."],
        ["options", None, "List every option that --set accepts, and exit."],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["addons"] = []
        self["set"] = []
        self["verbose"] = 0
        self["client_replay"] = []
        self["server_replay"] = []
        self["filter"] = None

    def parseOptions(self, options: Optional[Sequence[str]] = None) -> None:
        """
        Parse the command line.  Under twistd (as its C{interceptor}
        subcommand) a usage error prints one line and a hint to stderr and
        exits with status 2: twistd itself would print the whole help
        first.

        @raise usage.UsageError: A usage error, when parsed on its own.
        """
        try:
            usage.Options.parseOptions(self, options)
        except usage.UsageError as e:
            if self.parent is None:
                raise
            print(f"twistd interceptor: {self._explain(str(e))}\n{USAGE_HINT}", file=sys.stderr)
            raise SystemExit(2) from None

    def _explain(self, message: str) -> str:
        # getopt's "option --lisen not recognized", with the closest flags.
        match = _UNKNOWN_FLAG.match(message)
        if match is None:
            return message
        flag = match.group(1)
        names = [name.rstrip("=") for name in self.longOpt]
        return f"unknown flag {flag}{did_you_mean(flag.lstrip('-'), names, '--')}"

    def opt_listen(self, description: str) -> None:
        """
        Listen on this server endpoint string (repeatable).
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_addon(self, path: str) -> None:
        """
        Load an addon script, with arguments for its sys.argv ("FILE ARG..."); it is reloaded when the file changes (repeatable).
        """
        self["addons"].append(path)

    opt_s = opt_addon

    def opt_set(self, spec: str) -> None:
        """
        Set an option: NAME=VALUE (repeatable).
        """
        self["set"].append(spec)

    def opt_client_replay(self, path: str) -> None:
        """
        Replay the requests of this flow file (repeatable).
        """
        self["client_replay"].append(path)

    opt_C = opt_client_replay

    def opt_server_replay(self, path: str) -> None:
        """
        Answer requests from the responses of this flow file (repeatable).
        """
        self["server_replay"].append(path)

    opt_S = opt_server_replay

    def parseArgs(self, *words: str) -> None:
        """
        The words after the flags form a filter expression: only the flows
        it matches are printed (the C{dumper_filter} option).
        """
        if words:
            self["filter"] = " ".join(words)

    def opt_verbose(self) -> None:
        """
        Print more: -v adds headers to each flow, -vv bodies and debug logs.
        """
        self["verbose"] += 1

    opt_v = opt_verbose

    def postOptions(self) -> None:
        """
        Build and validate the proxy options.

        @raise usage.UsageError: An unknown option or a bad value.
        """
        # Before anything imports the reactor (build_master does): under
        # twistd, scripts that use asyncio get the asyncio reactor.
        if self.parent is not None and not reactor_installed():
            if scripts_need_asyncio(self["addons"]):
                install_asyncio_reactor()
        master = build_master(flows_to_log=self._daemon())
        self["master"] = master
        if self["options"]:
            print(master.options.help_text())
            raise SystemExit(0)
        for entry in self["addons"]:
            path, _ = split_script_entry(entry)
            if not os.path.isfile(os.path.expanduser(path)):
                raise usage.UsageError(f"--addon {path}: no such file")
        try:
            apply_command_line(master, self)
        except OptionsError as e:
            raise usage.UsageError(str(e)) from None
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        for description in self["listen"]:
            _check_endpoint(description)
        self._use_terminal_logger()

    def _daemon(self) -> bool:
        # twistd without -n: stdout is /dev/null once it has forked, so the
        # flows go to the log (twistd.log, or --logfile/--syslog).
        parent: Optional[Any] = getattr(self, "parent", None)
        return parent is not None and not parent.get("nodaemon")

    def _use_terminal_logger(self) -> None:
        # Under "twistd -n" with no --logfile and no --logger, the termlog
        # addon owns the terminal: install the observer that steps aside for it.
        parent: Optional[Any] = getattr(self, "parent", None)
        if parent is None or parent.get("logger") is not None:
            return
        if parent.get("nodaemon") and parent.get("logfile") in (None, "", "-"):
            parent["logger"] = "interceptor.log.terminal_observer"


# Flags that set an option of a built-in addon: (the flag's key, the option).
_FLOW_FLAGS = (
    ("save-stream-file", "save_stream_file"),
    ("rfile", "rfile"),
    ("client_replay", "client_replay"),
    ("server_replay", "server_replay"),
    ("filter", "dumper_filter"),
)


def build_master(flows_to_log: bool = False) -> Master:
    """
    A master with the core options and the default addons (whose dumper
    writes flows to the log instead of stdout if C{flows_to_log}).
    """
    return Master(proxy_options(), addons=default_addons(flows_to_log))


def apply_command_line(master: Master, config: Options) -> None:
    """
    Apply the parsed command line to C{master.options}.

    @raise OptionsError: A bad --set, or a bad value.
    """
    values: dict[str, Any] = {}
    if config["confdir"]:
        values["confdir"] = config["confdir"]
    if config["mode"]:
        values["mode"] = config["mode"]
    for flag, name in _FLOW_FLAGS:
        if config[flag]:
            values[name] = config[flag]
    if config["addons"]:
        values["scripts"] = list(config["addons"])
    if config["quiet"]:
        values["flow_detail"] = 0
        values["termlog_verbosity"] = "warn"
    elif config["verbose"]:
        values["flow_detail"] = min(1 + config["verbose"], 4)
        if config["verbose"] >= 2:
            values["termlog_verbosity"] = "debug"
    known = {k: v for k, v in values.items() if k in master.options}
    master.options.update(**known)
    if config["set"]:
        # Options that --addon scripts declare exist only once the scripts
        # load (when the proxy starts): hold those until then.
        master.options.set(*config["set"], defer=bool(config["addons"]))


def makeService(config: Options) -> ProxyService:
    """
    The service C{twistd interceptor} runs (in a process of its own, so it
    also keeps freed memory for reuse, unless C{fast_paths} is off: see
    L{interceptor.transport.fast.allocator}).
    """
    master = config["master"]
    if master.options.fast_paths:
        keep_freed_memory()
    # ctx.master.shutdown() ends the process.
    master.owns_reactor = True
    service = ProxyService(master, config["listen"], clean_sigterm=True, exit_on_failure=True)
    service.listening.addCallback(_announce_running, master)
    return service


def _announce_running(ports: Optional[list[Any]], master: Master) -> Optional[list[Any]]:
    # Every endpoint listens (None: one failed, and the proxy is stopping).
    if ports is not None:
        master.announce_running()
    return ports
