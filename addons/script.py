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

Scripts run at the script loader's place in the addon chain (before the
dumper of the default chain, so it prints what the scripts made of a flow).
On a change, the old script gets C{done()} (and is waited for), then the
new one is imported and gets C{start()} and C{configure()}.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
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
from interceptor.core.options import OptionsError

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = ["Script", "ScriptLoader", "load_script"]

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


def load_script(path: str) -> Optional[ModuleType]:
    """
    Import the script at C{path} as a fresh module.

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
        try:
            exec(code, module.__dict__)
        finally:
            if directory in sys.path:
                sys.path.remove(directory)
    except (Exception, SystemExit) as e:
        sys.modules.pop(name, None)
        line = _error_line(path, e)
        where = f"{path}, line {line}" if line is not None else path
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
    @ivar module: The imported module, or None when the import failed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"script:{path}"
        self.module = load_script(path)
        if self.module is None:
            self.addons: list[Any] = []
        else:
            listed = getattr(self.module, "addons", None)
            self.addons = list(listed) if isinstance(listed, (list, tuple)) else [self.module]

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
            wanted = []
            for path in options.scripts:
                full = os.path.abspath(os.path.expanduser(path))
                if not os.path.isfile(full):
                    raise OptionsError(f"option scripts: no such file: {path}")
                wanted.append(full)
            for path in list(self.loaded):
                if path not in wanted:
                    self._unload(path)
            for path in wanted:
                if path not in self.loaded:
                    self._load(path)
        if self._watcher is None and self.master is not None:
            self._watcher = LoopingCall(self.check_files)
            self._watcher.clock = self.master.reactor
            self._watcher.start(self.reload_interval, now=False)

    def _master(self) -> Master:
        if self.master is None:
            raise RuntimeError("the script loader has no master before load()")
        return self.master

    def _load(self, path: str) -> None:
        self._mtimes[path] = _mtime(path)
        script = Script(path)
        self.loaded[path] = script
        self._master().addons.add(script, parent=self)

    def _unload(self, path: str) -> Deferred[Any]:
        script = self.loaded.pop(path)
        self._mtimes.pop(path, None)
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
        for path in list(self.loaded):
            mtime = _mtime(path)
            if mtime is not None and mtime != self._mtimes.get(path):
                changed.append(path)
        if not changed:
            return None
        waiting = []
        for path in changed:
            _log.info("Reloading script {path}", path=path)
            d = maybeDeferred(self._unload, path)
            d.addErrback(self._unload_failed, path)
            d.addCallback(self._reload_after, path)
            waiting.append(d)
        return DeferredList(waiting, consumeErrors=True)

    def _unload_failed(self, failure: Failure, path: str) -> None:
        _log.failure("Unloading {path}", failure, path=path)

    def _reload_after(self, _: object, path: str) -> None:
        self._reload(path)

    def _reload(self, path: str) -> None:
        wanted = {os.path.abspath(os.path.expanduser(p)) for p in self._master().options.scripts}
        if self._watcher is None or path in self.loaded or path not in wanted:
            return  # stopped, loaded again, or no longer wanted meanwhile
        try:
            self._load(path)
        except Exception:
            _log.failure("Error reloading script {path}", path=path)

    def done(self) -> None:
        """
        Stop watching the files; the scripts get C{done()} from the manager.
        """
        if self._watcher is not None and self._watcher.running:
            self._watcher.stop()
        self._watcher = None
        self.loaded.clear()
