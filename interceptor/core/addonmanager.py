# -*- test-case-name: tests.test_addonmanager -*-
"""
The ordered chain of addons, and event delivery through it.

    manager = AddonManager(master)
    manager.add(MyAddon(), other_addon_module)
    d = manager.trigger("request", flow)   # fires when every hook is done

Each hook may return a plain value, a L{Deferred} or a coroutine; the chain
waits for each before calling the next.  The returned Deferred fires with
the last non-None value a hook returned (that is how C{next_layer} hooks
pick a layer).  An exception in a hook is logged as an error, with its
traceback, and the chain goes on.

A Deferred returned by a hook holds only the call of C{trigger} that got
it: an addon may hand the same Deferred to many flows, and each flow goes on
along its own chain when it fires.

Adding an addon calls its C{start()} (whose non-None return value replaces
it), then its C{load(loader)} (where it declares options), then does the
same for the addons listed in its C{addons} attribute.  Once the master
runs, an added addon also gets C{configure(options, every_name)}.
C{configure} may take C{(options, updated)} or, as mitmproxy's, only
C{(updated)}: which one is decided from its signature once per addon.
While the master starts, an addon that rejects the options (a script
loaded then too) makes the start fail; later, its error is logged.  An
exception in C{start()}/C{load()} (C{SystemExit} from a script's argparse
too) is that addon's error: it is logged and the addon is left out.
Removing one calls its C{done()}.  An addon that manages other addons at
run time (the script loader) adds them under itself with
C{manager.add(child, parent=self)}, so they run at its place in the chain.
"""

from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from interceptor.core import context
from interceptor.core.coroutines import run_coroutine
from interceptor.core.interfaces import EVENTS
from interceptor.core.options import Options, OptionsError

if TYPE_CHECKING:
    from interceptor.core.master import Master

__all__ = ["AddonManager", "Loader", "addon_name", "get_hook"]

_log = Logger(namespace="interceptor.addons")

_Hooks = Sequence[tuple[Any, Callable[..., Any]]]
"""(addon, hook) pairs, in chain order."""
_Args = tuple[Any, ...]
"""An event's arguments."""

# Names an addon may define that are not events but are part of the addon API.
_ADDON_API = {"load", "addons", "name"}


def addon_name(addon: Any) -> str:
    """
    A readable name for an addon: its C{name} attribute, its module's file
    for scripts, or its class name.
    """
    name = getattr(addon, "name", None)
    if isinstance(name, str):
        return name
    if inspect.ismodule(addon):
        return getattr(addon, "__file__", None) or addon.__name__
    return type(addon).__name__


def get_hook(addon: Any, event: str) -> Optional[Callable[..., Any]]:
    """
    Return C{addon}'s hook for C{event}, or None.  Attributes that are
    modules or classes (a script that does C{import log}) are not hooks.
    """
    hook: Optional[Callable[..., Any]] = getattr(addon, event, None)
    if hook is None or inspect.ismodule(hook) or inspect.isclass(hook) or not callable(hook):
        return None
    return hook


def near_misses(addon: Any) -> list[tuple[str, str]]:
    """
    (name, event) pairs for functions of C{addon} whose name looks like a
    misspelt event name, such as C{reqeust}.
    """
    found = []
    for name in dir(addon):
        if name.startswith("_") or name in EVENTS or name in _ADDON_API:
            continue
        value = getattr(addon, name, None)
        if not (inspect.isfunction(value) or inspect.ismethod(value)):
            continue
        match = difflib.get_close_matches(name, EVENTS, n=1, cutoff=0.8)
        if match:
            found.append((name, match[0]))
    return found


def _own(d: Deferred[Any]) -> Deferred[Any]:
    """
    A new Deferred with the result of C{d}, so that the chain waiting on it
    never changes or pauses C{d} itself: an addon may return the same
    Deferred to many flows, and each goes on along its own chain when it
    fires.  C{d} keeps its result; a failure is passed on and consumed.
    """
    mine: Deferred[Any] = Deferred()

    def relay(result: Any) -> Any:
        if isinstance(result, Failure):
            mine.errback(result)
            return None
        mine.callback(result)
        return result

    d.addBoth(relay)
    return mine


class Loader:
    """
    Passed to an addon's C{load(loader)}: lets it declare its own options.
    """

    def __init__(self, master: Master) -> None:
        self.master = master

    def add_option(
        self,
        name: str,
        typespec: object,
        default: Any,
        help: str,
        choices: Optional[Sequence[str | int]] = None,
    ) -> None:
        """
        Declare an option, as L{interceptor.options.Options.add_option}.
        """
        self.master.options.add_option(name, typespec, default, help, choices)


class AddonManager:
    """
    The ordered addon chain of one master.

    @ivar chain: The top-level addons, in order.
    """

    def __init__(self, master: Master) -> None:
        self.master = master
        self.chain: list[Any] = []
        self._nested: dict[int, list[Any]] = {}
        self._hooks: dict[str, list[tuple[Any, Callable[..., Any]]]] = {}
        # id(addon) -> whether its configure takes (options, updated).
        self._configure_takes_options: dict[int, bool] = {}

    # -- the chain --------------------------------------------------------

    def add(self, *addons: Any, parent: Any = None) -> list[Any]:
        """
        Append addons to the chain, or to the nested addons of C{parent}
        (an addon already in the chain) so that they run right after it and
        its earlier children.

        Once the master runs, each added addon (and its nested ones) gets
        C{configure(options, every_name)}; an error there is logged, and the
        addon stays loaded.

        @return: The addons as registered (C{start()} may have replaced them;
            an addon whose C{start()} or C{load()} failed is left out).
        @raise ValueError: C{parent} is not loaded.
        """
        if parent is not None and not any(each is parent for each in self):
            raise ValueError(f"{addon_name(parent)} is not loaded")
        # (start() and load() are hooks: ctx is this master while they run.)
        context.activate(self.master)
        added = []
        for addon in addons:
            registered = self._register(addon)
            if registered is None:
                continue
            if parent is None:
                self.chain.append(registered)
            else:
                self._nested.setdefault(id(parent), []).append(registered)
            added.append(registered)
        self._hooks.clear()
        if getattr(self.master, "running", False):
            every = self.master.options.keys()
            for each in list(self._walk(added)):
                try:
                    self._configure_one(each, self.master.options, every)
                except OptionsError as e:
                    if getattr(self.master, "starting", False):
                        raise OptionsError(f"{addon_name(each)}: {e}") from None
                    _log.error(
                        "Addon {addon} rejects the current options: {error}",
                        addon=addon_name(each),
                        error=str(e),
                    )
        return added

    def _register(self, addon: Any) -> Any:
        start = get_hook(addon, "start")
        if start is not None:
            try:
                # mitmproxy 2.0's scripts: start(options), which may return the addon.
                replacement = start(self.master.options) if _required(start) == 1 else start()
                if inspect.iscoroutine(replacement):
                    replacement = Deferred.fromCoroutine(replacement)
                if isinstance(replacement, Deferred):
                    replacement = self._synchronous_result(replacement, addon)
            except BaseException as e:
                _reraise_interrupt(e)
                _log.failure(
                    "Addon {addon} failed in start() and was not loaded", addon=addon_name(addon)
                )
                return None
            if replacement is not None:
                addon = replacement
        for name, event in near_misses(addon):
            _log.warn(
                "Addon {addon}: {name!r} is not an event; did you mean {event!r}?",
                addon=addon_name(addon),
                name=name,
                event=event,
            )
        load = get_hook(addon, "load")
        if load is not None:
            try:
                load(Loader(self.master))
            except BaseException as e:
                _reraise_interrupt(e)
                _log.failure(
                    "Addon {addon} failed in load() and was not loaded", addon=addon_name(addon)
                )
                return None
        nested = []
        for child in getattr(addon, "addons", None) or []:
            registered = self._register(child)
            if registered is not None:
                nested.append(registered)
        self._nested[id(addon)] = nested
        configure = get_hook(addon, "configure")
        if configure is not None:
            self._configure_takes_options[id(addon)] = _takes_two(configure)
        commands = getattr(self.master, "commands", None)
        if commands is not None:
            commands.collect(addon)
        return addon

    def _synchronous_result(self, d: Deferred[Any], addon: Any) -> Any:
        # start() must decide at once which object is the addon: a Deferred
        # (or async def start) counts only if it has already fired.
        box: list[Any] = []
        d.addBoth(box.append)
        if not box:
            _log.warn(
                "Addon {addon}: start() returned a Deferred that has not fired; "
                "the addon is loaded as it is",
                addon=addon_name(addon),
            )
            d.addErrback(
                lambda f: _log.failure("Addon {addon} failed in start()", f, addon=addon_name(addon))
            )
            return None
        result = box[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def nest(self, child: Any, parent: Any, wanted: bool) -> None:
        """
        Keep C{child} nested under C{parent} while C{wanted}, out of the
        chain otherwise: an addon whose hooks only matter while an option is
        set costs no event anything while it is not.
        """
        present = any(addon is child for addon in self)
        if wanted and not present:
            self.add(child, parent=parent)
        elif not wanted and present:
            self.remove(child)

    def remove(self, addon: Any) -> Deferred[Any]:
        """
        Remove an addon (top-level, or nested in another) and call
        C{done()} on it and its nested addons.

        @return: A Deferred that fires when every C{done()} has finished.
        @raise ValueError: The addon is not loaded.
        """
        if any(each is addon for each in self.chain):
            self.chain = [each for each in self.chain if each is not addon]
        else:
            for children in self._nested.values():
                if any(each is addon for each in children):
                    children[:] = [each for each in children if each is not addon]
                    break
            else:
                raise ValueError(f"{addon_name(addon)} is not loaded")
        self._hooks.clear()
        members = list(self._walk([addon]))
        for each in members:
            self._forget(each)
        return self._call_each(members, "done", ())

    def _forget(self, addon: Any) -> None:
        self._nested.pop(id(addon), None)
        self._configure_takes_options.pop(id(addon), None)
        commands = getattr(self.master, "commands", None)
        if commands is not None:
            commands.forget(addon)

    def clear(self) -> Deferred[Any]:
        """
        Remove every addon, calling C{done()} on each.  The addons stay in
        the chain until every C{done()} has finished, so what one logs on
        the way out (an error in its C{done()}) still reaches the others'
        C{log} hooks.
        """
        top = list(self.chain)
        members = list(self._walk(top))

        def forget(result: Any) -> Any:
            self.chain = [each for each in self.chain if not any(each is t for t in top)]
            for each in members:
                self._forget(each)
            self._hooks.clear()
            return result

        return self._call_each(members, "done", ()).addBoth(forget)

    def _walk(self, addons: list[Any]) -> Iterator[Any]:
        for addon in addons:
            yield addon
            yield from self._walk(self._nested.get(id(addon), []))

    def __iter__(self) -> Iterator[Any]:
        """
        Every addon, nested ones right after their parent.
        """
        return self._walk(self.chain)

    def get(self, name: str) -> Any:
        """
        The first addon whose L{addon_name} is C{name}, or None.
        """
        for addon in self:
            if addon_name(addon) == name:
                return addon
        return None

    # -- events -----------------------------------------------------------

    def hooks(self, event: str) -> list[tuple[Any, Callable[..., Any]]]:
        """
        The (addon, hook) pairs for C{event}, in chain order.
        """
        hooks = self._hooks.get(event)
        if hooks is None:
            hooks = []
            for addon in self:
                hook = get_hook(addon, event)
                if hook is not None:
                    hooks.append((addon, hook))
            self._hooks[event] = hooks
        return hooks

    def has_hooks(self, event: str) -> bool:
        """
        Whether any addon handles C{event} (lets hot paths skip L{trigger}).
        """
        hooks = self._hooks.get(event)
        if hooks is None:
            hooks = self.hooks(event)
        return bool(hooks)

    def trigger(self, event: str, *args: Any) -> Deferred[Any]:
        """
        Call every addon's C{event} hook in order, waiting for each.

        @return: A Deferred firing with the last non-None hook result once
            every hook has finished.  It never fails, and its C{called} is
            true only once every hook has finished, so a caller may test it
            to skip holding the flow.
        """
        hooks = self._hooks.get(event)
        if hooks is None:
            hooks = self.hooks(event)
        if not hooks:
            return succeed(None)
        d = self._run(hooks, 0, event, args, None)
        if d.called and d.paused:
            # An early hook's Deferred had fired, a later one has not: d is
            # "called" but still waiting.  Hand out one that is not.
            waiting: Deferred[Any] = Deferred()
            d.addBoth(waiting.callback)
            return waiting
        return d

    def run(self, event: str, *args: Any) -> Optional[Deferred[Any]]:
        """
        As L{trigger}, but None when every hook finished at once (the usual
        case, so that no Deferred is made for it: three events per proxied
        request), else the Deferred L{trigger} would give.
        """
        hooks = self._hooks.get(event)
        if hooks is None:
            hooks = self.hooks(event)
        if hooks and context.current is not self.master:
            context.activate(self.master)
        for i in range(len(hooks)):
            value = self._call(hooks[i], event, args)
            if isinstance(value, Deferred):
                d = self._after(value, hooks, i, event, args, None)
                if d.called and d.paused:
                    waiting: Deferred[Any] = Deferred()
                    d.addBoth(waiting.callback)
                    return waiting
                return d
        return None

    def _call(self, hook: tuple[Any, Callable[..., Any]], event: str, args: _Args) -> Any:
        """
        Call one hook: its value (a Deferred for a coroutine), or None when
        it raised (logged as that addon's error).
        """
        addon, function = hook
        try:
            value = function(*args)
            if value is None:
                return None
            if inspect.iscoroutine(value):
                return run_coroutine(value, event)
            if isinstance(value, Deferred):
                return _own(value)
            return value
        except BaseException as e:
            _reraise_interrupt(e)
            self._hook_failed(Failure(), addon, event)
            return None

    def _after(
        self, d: Deferred[Any], hooks: _Hooks, i: int, event: str, args: _Args, result: Any
    ) -> Deferred[Any]:
        # The hooks after the i-th, once its Deferred has fired.
        return d.addCallbacks(
            self._resume,
            self._resume_after_failure,
            callbackArgs=(hooks, i, event, args, result),
            errbackArgs=(hooks, i, event, args, result),
        )

    def _run(
        self,
        hooks: _Hooks,
        index: int,
        event: str,
        args: tuple[Any, ...],
        result: Any,
    ) -> Deferred[Any]:
        # (Also when resuming after a hook that took time: another master's
        # hooks may have run meanwhile, and ctx is the master running them.)
        if context.current is not self.master:
            context.activate(self.master)
        for i in range(index, len(hooks)):
            value = self._call(hooks[i], event, args)
            if value is None:
                continue
            if isinstance(value, Deferred):
                return self._after(value, hooks, i, event, args, result)
            result = value
        return succeed(result)

    def _resume(
        self, value: Any, hooks: _Hooks, i: int, event: str, args: _Args, result: Any
    ) -> Deferred[Any]:
        return self._run(hooks, i + 1, event, args, result if value is None else value)

    def _resume_after_failure(
        self, failure: Failure, hooks: _Hooks, i: int, event: str, args: _Args, result: Any
    ) -> Deferred[Any]:
        self._hook_failed(failure, hooks[i][0], event)
        return self._run(hooks, i + 1, event, args, result)

    def _hook_failed(self, failure: Failure, addon: Any, event: str) -> None:
        _log.failure(
            "Addon error in {addon}.{event}", failure=failure, addon=addon_name(addon), event=event
        )

    def _call_each(self, addons: list[Any], event: str, args: tuple[Any, ...]) -> Deferred[Any]:
        context.activate(self.master)
        hooks = [(a, h) for a in addons if (h := get_hook(a, event)) is not None]
        return self._run(hooks, 0, event, args, None)

    def configure_all(self, options: Options, updated: set[str]) -> None:
        """
        Call every addon's C{configure(options, updated)} synchronously.

        @raise OptionsError: An addon rejected the change.
        """
        # A snapshot: addons added meanwhile (a script loaded by the script
        # loader's configure) are configured once, by add().
        context.activate(self.master)
        for addon in list(self):
            self._configure_one(addon, options, updated)

    def _configure_one(self, addon: Any, options: Options, updated: set[str]) -> None:
        configure = get_hook(addon, "configure")
        if configure is None:
            return
        takes_options = self._configure_takes_options.get(id(addon))
        if takes_options is None:
            takes_options = self._configure_takes_options[id(addon)] = _takes_two(configure)
        try:
            if takes_options:
                configure(options, updated)
            else:
                configure(updated)
        except OptionsError:
            raise
        except BaseException as e:
            _reraise_interrupt(e)
            self._hook_failed(Failure(), addon, "configure")


def _takes_two(configure: Callable[..., Any]) -> bool:
    """
    Whether C{configure} is ours, C{configure(options, updated)}, rather
    than mitmproxy's C{configure(updated)}: it accepts two positional
    arguments.
    """
    return _accepts(configure, 2, default=True)


def _required(function: Callable[..., Any]) -> int:
    """
    How many positional arguments C{function} requires (0 when its
    signature cannot be read).
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(
        1
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


def _accepts(function: Callable[..., Any], count: int, default: bool) -> bool:
    """
    Whether C{function} accepts C{count} positional arguments (C{default}
    when its signature cannot be read).
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return default
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= count or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _reraise_interrupt(error: BaseException) -> None:
    """
    Raise C{error} again if it must end the process (Ctrl-C), not be
    counted as the addon's error as C{SystemExit} from a script is.
    """
    if isinstance(error, (KeyboardInterrupt, GeneratorExit)):
        raise error
