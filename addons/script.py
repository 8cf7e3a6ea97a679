# -*- test-case-name: tests.test_script -*-
"""
Loads addon scripts named by the option C{scripts} (C{--addon FILE} or
C{-s FILE} on the command line) and reloads each one when its file changes.

A script is a Python file whose module-level functions are hooks::

    def request(flow):
        flow.request.headers["X-Script"] = "1"

or whose module-level C{addons = [...]} lists addon objects.  A script that
fails to import (a syntax error, an exception at import time) is logged with
its file and line; the proxy keeps running and loads the file again once it
changes.

An entry may carry arguments, as in mitmproxy 2.x: C{--addon "filter.py
--host example.org"} imports C{filter.py} with C{sys.argv} set to
C{["filter.py", "--host", "example.org"]} (the entry split as a shell
splits it; an entry naming an existing file is that file, spaces and all).
A C{SystemExit} while it is imported (its argparse refusing the arguments,
or C{--help}) is that script's error, logged; the proxy runs on.  As in
mitmproxy 2.x, the arguments stay in C{sys.argv} once the script is loaded
(2.x scripts read them in C{start()} and C{done()}); with several scripts
given arguments, C{sys.argv} holds the last loaded one's.

Scripts run at the script loader's place in the addon chain (before the
dumper of the default chain, so it prints what the scripts made of a flow).
On a change, the old script gets C{done()} (and is waited for), then the
new one is imported and gets C{start()} and C{configure()}.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shlex
import sys
import traceback
from types import ModuleType
from typing import TYPE_CHECKING, Any, Optional, Sequence

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.core.interfaces import IConfigure, IDone
from interceptor.core.scriptentry import split_script_entry
from interceptor.core.options import OptionsError

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = ["Script", "ScriptLoader", "load_script", "split_script_entry"]

_log = Logger(namespace="interceptor.script")
_counter = itertools.count(1)


def _error_line(path: str, error: BaseException) -> Optional[int]:
    if isinstance(error, SyntaxError) and error.filename == path:
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    return line


def load_script(path: str, args: Sequence[str] = ()) -> Optional[ModuleType]:
    """
    Import the script at C{path} as a fresh module, with C{sys.argv} set to
    the script's name and C{args} while it is imported.

    @return: The module, or None when it failed to import (the failure is
        logged with the file and line).
    """
    path = os.path.abspath(path)
    name = f"__interceptor_script_{next(_counter)}"
    directory = os.path.dirname(path)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"not a Python file: {path}")
        module = importlib.util.module_from_spec(spec)
        # (typeshed's ModuleType declares no __cached__.)
        module.__cached__ = None  # type: ignore[attr-defined]
        # Compiled from the source each time: a byte-code cache keyed on the
        # mtime in whole seconds and the size could hand back the previous
        # version of a script edited twice within a second.
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
        sys.modules[name] = module
        sys.path.insert(0, directory)
        saved_argv = sys.argv
        sys.argv = [os.path.basename(path), *args]
        try:
            exec(code, module.__dict__)
        finally:
            sys.argv = saved_argv
            if directory in sys.path:
                sys.path.remove(directory)
    except (Exception, SystemExit) as e:
        sys.modules.pop(name, None)
        line = _error_line(path, e)
        where = f"{path}, line {line}" if line is not None else path
        if isinstance(e, SystemExit):
            _log.error(
                "Error loading script {where}: SystemExit({code}) while imported "
                "with the arguments {args}; it is not loaded",
                where=where,
                code=e.code,
                args=list(args),
            )
            return None
        _log.error(
            "Error loading script {where}: {error}\n{tb}",
            where=where,
            error=f"{type(e).__name__}: {e}",
            tb="".join(traceback.format_exception(e)).rstrip(),
        )
        return None
    return module


class Script:
    """
    One loaded script: an addon whose nested C{addons} are the script's
    module (its functions are hooks) or the objects of its C{addons} list.

    @ivar path: The absolute path of the file.
    @ivar args: The arguments it gets in C{sys.argv}.
    @ivar module: The imported module, or None when the import failed.
    """

    def __init__(self, path: str, args: Sequence[str] = ()) -> None:
        self.path = path
        self.args = list(args)
        self.name = f"script:{path}"
        self.module = load_script(path, self.args)
        if self.module is None:
            self.addons: list[Any] = []
        else:
            listed = getattr(self.module, "addons", None)
            self.addons = list(listed) if isinstance(listed, (list, tuple)) else [self.module]
            if self.args:
                # As mitmproxy 2.x: the arguments stay in sys.argv for the
                # script's hooks too (its start() and done() read them; the
                # module's done() runs after this one's, so it is not given
                # back).
                sys.argv = [os.path.basename(path), *self.args]

    def done(self) -> None:
        """
        Forget the script's module.
        """
        if self.module is not None:
            sys.modules.pop(self.module.__name__, None)


def _mtime(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@implementer(IConfigure, IDone)
class ScriptLoader:
    """
    Keeps the loaded scripts in line with the option C{scripts}, and polls
    their files every C{reload_interval} seconds to reload changed ones.
    """

    name = "scriptloader"

    def __init__(self, reload_interval: float = 0.5) -> None:
        self.reload_interval = reload_interval
        self.master: Optional[Master] = None
        # The scripts by key: the absolute path, then the arguments if any.
        self.loaded: dict[str, Script] = {}
        self._mtimes: dict[str, Optional[int]] = {}
        self._watcher: Optional[LoopingCall] = None

    def load(self, loader: Loader) -> None:
        """
        Declare the option C{scripts}.
        """
        self.master = loader.master
        loader.add_option(
            "scripts",
            Sequence[str],
            [],
            "Addon scripts to load (--addon/-s FILE); each is reloaded when it changes.",
        )

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Load newly named scripts, unload removed ones, start watching.
        """
        if "scripts" in updated:
            wanted = self._wanted(options.scripts, check=True)
            for key in list(self.loaded):
                if key not in wanted:
                    self._unload(key)
            for key, (path, args) in wanted.items():
                if key not in self.loaded:
                    self._load(key, path, args)
        if self._watcher is None and self.master is not None:
            self._watcher = LoopingCall(self.check_files)
            self._watcher.clock = self.master.reactor
            self._watcher.start(self.reload_interval, now=False)

    def _master(self) -> Master:
        if self.master is None:
            raise RuntimeError("the script loader has no master before load()")
        return self.master

    @staticmethod
    def _wanted(entries: Sequence[str], check: bool = False) -> dict[str, tuple[str, list[str]]]:
        # key -> (absolute path, args), for each entry of the option; the
        # key is the path, followed by the arguments if any.
        wanted: dict[str, tuple[str, list[str]]] = {}
        for entry in entries:
            path, args = split_script_entry(entry)
            full = os.path.abspath(os.path.expanduser(path))
            if check and not os.path.isfile(full):
                raise OptionsError(f"option scripts: no such file: {path}")
            wanted[shlex.join([full, *args]) if args else full] = (full, args)
        return wanted

    def _load(self, key: str, path: str, args: Sequence[str]) -> None:
        self._mtimes[key] = _mtime(path)
        script = Script(path, args)
        self.loaded[key] = script
        self._master().addons.add(script, parent=self)

    def _unload(self, key: str) -> Deferred[Any]:
        script = self.loaded.pop(key)
        self._mtimes.pop(key, None)
        addons = self._master().addons
        if any(each is script for each in addons):
            return addons.remove(script)
        return succeed(None)

    def check_files(self) -> Optional[Deferred[Any]]:
        """
        Reload every script whose file changed since it was loaded: the old
        one's C{done()} is waited for before the new one is imported.

        @return: A Deferred firing when every reload has finished (the
            polling loop waits for it), or None when nothing changed.
        """
        changed = []
        for key, script in list(self.loaded.items()):
            mtime = _mtime(script.path)
            if mtime is not None and mtime != self._mtimes.get(key):
                changed.append(key)
        if not changed:
            return None
        waiting = []
        for key in changed:
            _log.info("Reloading script {path}", path=self.loaded[key].path)
            d = maybeDeferred(self._unload, key)
            d.addErrback(self._unload_failed, key)
            d.addCallback(self._reload_after, key)
            waiting.append(d)
        return DeferredList(waiting, consumeErrors=True)

    def _unload_failed(self, failure: Failure, key: str) -> None:
        _log.failure("Unloading {path}", failure, path=key)

    def _reload_after(self, _: object, key: str) -> None:
        self._reload(key)

    def _reload(self, key: str) -> None:
        wanted = self._wanted(self._master().options.scripts)
        if self._watcher is None or key in self.loaded or key not in wanted:
            return  # stopped, loaded again, or no longer wanted meanwhile
        try:
            self._load(key, *wanted[key])
        except Exception:
            _log.failure("Error reloading script {path}", path=key)

    def done(self) -> None:
        """
        Stop watching the files; the scripts get C{done()} from the manager.
        """
        if self._watcher is not None and self._watcher.running:
            self._watcher.stop()
        self._watcher = None
        self.loaded.clear()
