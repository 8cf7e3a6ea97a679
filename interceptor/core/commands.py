# -*- test-case-name: tests.compat.test_runtime -*-
"""
Commands: addon methods callable by name, as mitmproxy's.

An addon declares one with L{command}; its annotations type the
arguments::

    from interceptor import command

    class Counter:
        @command.command("counter.add")
        def add(self, flows: Sequence[Flow], step: int = 1) -> int:
            ...

    master.commands.call("counter.add", flows, 2)       # typed values
    master.commands.execute("counter.add @all 2")       # a command line

The master's L{CommandManager} collects the commands of every addon as it is
added (and forgets them when it is removed).  L{CommandManager.call} checks
the values against the annotations; L{CommandManager.execute} splits a
command line as a shell would and converts each word: C{str}, C{int},
C{float}, C{bool} (true/false), C{bytes}, C{Sequence[str]} (comma
separated), and flows (C{Flow}, C{HTTPFlow}, C{Sequence[Flow]}): C{@all},
or a filter expression, over the flows of the C{view} addon.  Every
problem is a L{CommandError} naming the command and the argument.
"""

from __future__ import annotations

import collections.abc
import inspect
import shlex
import typing
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from interceptor.core.options import did_you_mean
from interceptor.model.flow import Flow

if TYPE_CHECKING:
    from interceptor.core.master import Master

__all__ = ["CommandError", "Command", "CommandManager", "command", "COMMAND_ATTRIBUTE"]

COMMAND_ATTRIBUTE = "command_name"
"""The attribute L{command} sets on a function: the command's name."""

_F = TypeVar("_F", bound=Callable[..., Any])


class CommandError(Exception):
    """
    A command that does not exist, or arguments that do not fit it, or a
    command that failed.
    """


def command(name: Optional[str] = None) -> Callable[[_F], _F]:
    """
    Declare an addon method as the command C{name} (the function's name
    when not given).  The function itself is left as it is.
    """

    def decorate(function: _F) -> _F:
        setattr(function, COMMAND_ATTRIBUTE, name or function.__name__)
        return function

    return decorate


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _sequence_item(annotation: Any) -> Any:
    # The item type of Sequence[X] / list[X] / tuple[X, ...], or None.
    origin = typing.get_origin(annotation)
    if origin in (collections.abc.Sequence, list, tuple):
        args = typing.get_args(annotation)
        return args[0] if args else Any
    return None


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    item = _sequence_item(annotation)
    if item is not None:
        return f"sequence of {_type_name(item)}"
    if typing.get_origin(annotation) is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", repr(annotation))


def _fits(value: Any, annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    if typing.get_origin(annotation) is typing.Union:
        return any(_fits(value, each) for each in typing.get_args(annotation))
    item = _sequence_item(annotation)
    if item is not None:
        return isinstance(value, (list, tuple)) and all(_fits(v, item) for v in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type) and issubclass(annotation, str):
        # (interceptor.types' Path and the like: any str will do.)
        return isinstance(value, str)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # (a type this module does not know: not checked)


class Command:
    """
    One command: a name and the bound method it calls.

    @ivar name: The command's name.
    @ivar function: The bound method.
    @ivar parameters: Its parameters, annotations resolved.
    """

    def __init__(self, manager: CommandManager, name: str, function: Callable[..., Any]) -> None:
        self.manager = manager
        self.name = name
        self.function = function
        try:
            hints = typing.get_type_hints(function)
        except Exception:
            hints = {}
        self.parameters = [
            parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
            for parameter in inspect.signature(function).parameters.values()
        ]

    def usage(self) -> str:
        """
        The command and its parameters, as C{name flows:sequence of Flow [step:int]}.
        """
        words = [self.name]
        for p in self.parameters:
            word = f"{p.name}:{_type_name(p.annotation)}"
            if p.kind is p.VAR_POSITIONAL:
                word = f"*{word}"
            elif p.default is not p.empty:
                word = f"[{word}]"
            words.append(word)
        return " ".join(words)

    def _bind(self, args: tuple[Any, ...]) -> list[tuple[inspect.Parameter, Any]]:
        # Each argument with the parameter it goes to.
        pairs: list[tuple[inspect.Parameter, Any]] = []
        positional = [p for p in self.parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        rest = [p for p in self.parameters if p.kind is p.VAR_POSITIONAL]
        for i, value in enumerate(args):
            if i < len(positional):
                pairs.append((positional[i], value))
            elif rest:
                pairs.append((rest[0], value))
            else:
                raise CommandError(
                    f"command {self.name}: too many arguments ({len(args)}); usage: {self.usage()}"
                )
        missing = [p.name for p in positional[len(args):] if p.default is p.empty]
        if missing:
            raise CommandError(
                f"command {self.name}: missing argument {missing[0]}; usage: {self.usage()}"
            )
        return pairs

    def call(self, *args: Any) -> Any:
        """
        Call the command with typed values.

        @raise CommandError: An argument does not fit its annotation, or
            the command raised (the message says what).
        """
        for parameter, value in self._bind(args):
            if not _fits(value, parameter.annotation):
                raise CommandError(
                    f"command {self.name}: argument {parameter.name} expects "
                    f"{_type_name(parameter.annotation)}, got {type(value).__name__} {value!r:.80}"
                )
        try:
            return self.function(*args)
        except CommandError:
            raise
        except Exception as e:
            raise CommandError(f"command {self.name} failed: {type(e).__name__}: {e}") from e

    def parse(self, words: list[str]) -> list[Any]:
        """
        Convert the words of a command line into typed values.

        @raise CommandError: A word does not convert.
        """
        return [self._convert(parameter, word) for parameter, word in self._bind(tuple(words))]

    def _convert(self, parameter: inspect.Parameter, word: str) -> Any:
        annotation = parameter.annotation
        try:
            return self.manager.convert(word, annotation)
        except (ValueError, CommandError) as e:
            raise CommandError(
                f"command {self.name}: argument {parameter.name}: {e}"
            ) from None


class CommandManager:
    """
    The commands of one master's addons.

    @ivar commands: Every command by name.
    """

    def __init__(self, master: Master) -> None:
        self.master = master
        self.commands: dict[str, Command] = {}
        self._owners: dict[str, Any] = {}

    def collect(self, addon: Any) -> None:
        """
        Register the commands of C{addon} (its methods decorated with
        L{command}).  A name already taken by another addon is replaced.
        """
        for attribute in dir(addon):
            if attribute.startswith("__"):
                continue
            try:
                function = getattr(addon, attribute)
            except Exception:
                continue
            name = getattr(function, COMMAND_ATTRIBUTE, None)
            if isinstance(name, str) and callable(function):
                self.add(name, function, owner=addon)

    def add(self, name: str, function: Callable[..., Any], owner: Any = None) -> None:
        """
        Register C{function} as the command C{name}.
        """
        self.commands[name] = Command(self, name, function)
        self._owners[name] = owner

    def forget(self, addon: Any) -> None:
        """
        Remove the commands that C{addon} registered.
        """
        for name in [n for n, owner in self._owners.items() if owner is addon]:
            del self.commands[name]
            del self._owners[name]

    def get(self, name: str) -> Command:
        """
        The command C{name}.

        @raise CommandError: No such command.
        """
        found = self.commands.get(name)
        if found is None:
            raise CommandError(f"unknown command {name!r}{did_you_mean(name, self.commands)}")
        return found

    def call(self, name: str, *args: Any) -> Any:
        """
        Call the command C{name} with typed values.

        @return: What the command returns.
        @raise CommandError: Unknown command, arguments that do not fit, or
            the command failed.
        """
        return self.get(name).call(*args)

    def call_strings(self, name: str, words: typing.Sequence[str]) -> Any:
        """
        Call the command C{name} with arguments given as strings.

        @raise CommandError: As L{call}, or a word that does not convert.
        """
        found = self.get(name)
        return found.call(*found.parse(list(words)))

    def execute(self, line: str) -> Any:
        """
        Run a command line such as C{"replay.client @all"} (words split as
        a shell does: quotes group them).

        @raise CommandError: As L{call_strings}, or a line that does not split.
        """
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise CommandError(f"cannot parse command line {line!r}: {e}") from None
        if not words:
            raise CommandError("empty command line")
        return self.call_strings(words[0], words[1:])

    def convert(self, word: str, annotation: Any) -> Any:
        """
        Convert one word of a command line to C{annotation}.

        @raise ValueError: (or L{CommandError}) It does not convert.
        """
        if annotation in (str, Any, inspect.Parameter.empty, object):
            return word
        if annotation is int:
            return int(word)
        if annotation is float:
            return float(word)
        if annotation is bool:
            lowered = word.lower()
            if lowered in _TRUE or lowered in _FALSE:
                return lowered in _TRUE
            raise ValueError(f"expected true or false, got {word!r}")
        if annotation is bytes:
            return word.encode("utf-8", "surrogateescape")
        if isinstance(annotation, type) and issubclass(annotation, str):
            return annotation(word)
        if typing.get_origin(annotation) is typing.Union:
            args = typing.get_args(annotation)
            if type(None) in args and word == "":
                return None
            for each in args:
                if each is not type(None):
                    try:
                        return self.convert(word, each)
                    except (ValueError, CommandError):
                        continue
            raise ValueError(f"expected {_type_name(annotation)}, got {word!r}")
        item = _sequence_item(annotation)
        if isinstance(item, type) and issubclass(item, Flow):
            return [f for f in self.flows(word) if isinstance(f, item)]
        if item is not None:
            return [self.convert(part, item) for part in word.split(",") if part != ""]
        if isinstance(annotation, type) and issubclass(annotation, Flow):
            flows = [f for f in self.flows(word) if isinstance(f, annotation)]
            if len(flows) != 1:
                raise CommandError(f"{word!r} names {len(flows)} flows, expected one")
            return flows[0]
        raise CommandError(f"cannot convert a command-line word to {_type_name(annotation)}")

    def flows(self, spec: str) -> list[Flow]:
        """
        The flows of the C{view} addon that C{spec} names: C{@all}, or a
        filter expression.

        @raise CommandError: No view addon, or a bad filter expression.
        """
        view = self.master.addons.get("view")
        if view is None:
            raise CommandError("flows are named from the view addon, which is not loaded")
        flows: list[Flow] = list(view.flows)
        if spec == "@all":
            return flows
        from interceptor import flowfilter

        try:
            matches = flowfilter.parse(spec)
        except ValueError as e:
            raise CommandError(f"bad filter expression {spec!r}: {e}") from None
        return [f for f in flows if matches(f)]
