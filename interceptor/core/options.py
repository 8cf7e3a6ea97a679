# -*- test-case-name: tests.test_options -*-
"""
Typed options with defaults and help text.

    opts = Options()
    opts.add_option("anticache", bool, False, "Strip cache headers.")
    opts.update(anticache=True)        # validated; subscribers see {"anticache"}
    opts.set("anticache=false")         # the --set NAME=VALUE form
    opts.anticache                      # -> False
    opts.set("later=1", defer=True)     # held until an addon declares "later"

A bad value (unknown name, wrong type, value outside its choices) raises
L{OptionsError} naming the option, and leaves every option unchanged.  So
does an exception raised by a subscriber (an addon's C{configure} raising
L{OptionsError}): the values are put back, and the subscribers are told
again about the names, so an addon that already saw the rejected value
sees the previous one again (as mitmproxy does).
"""

from __future__ import annotations

import builtins
import collections.abc
import difflib
import functools
import math
import re
import typing
from typing import Any, Callable, Iterable, Optional, Sequence

from twisted.logger import Logger

__all__ = [
    "Options",
    "OptionsError",
    "Option",
    "did_you_mean",
    "filter_option",
    "filter_check",
    "parse_size",
    "proxy_options",
]

_log = Logger(namespace="interceptor.options")


class OptionsError(Exception):
    """
    An option name or value was rejected.
    """


def filter_option(options: "Options", name: str) -> Optional[Callable[[Any], bool]]:
    """
    The parsed filter expression of option C{name}
    (L{interceptor.flowfilter}), or None when it is empty.

    @raise OptionsError: The expression does not parse; the message names
        the option and where the expression went wrong.
    """
    text = getattr(options, name)
    if not text:
        return None
    from interceptor import flowfilter

    try:
        return flowfilter.parse(text)
    except flowfilter.FilterSyntaxError as e:
        raise OptionsError(f"option {name}: {e}") from None


def filter_check(*names: str) -> Callable[["Options", set[str]], None]:
    """
    A subscriber (L{Options.subscribe}) rejecting a filter expression that
    does not parse when one of the options C{names} is set, so that a typo
    is an error at once (a usage error on the command line), not when the
    proxy starts.
    """
    wanted = frozenset(names)

    def check(options: "Options", updated: set[str]) -> None:
        for name in updated.intersection(wanted):
            filter_option(options, name)

    return check


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> str:
    """
    C{" (did you mean X?)"} naming the candidates closest to C{word} (each
    written after C{prefix}, e.g. C{"--"}), or C{""} when none is close.
    """
    close = difflib.get_close_matches(word, sorted(candidates), n=3, cutoff=0.8)
    if not close:
        return ""
    return f" (did you mean {' or '.join(prefix + name for name in close)}?)"


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def parse_size(text: Optional[str]) -> Optional[int]:
    """
    Parse a size such as C{"1m"}, C{"512k"} or C{"100"} into bytes; C{None}
    or an empty string mean no size.

    @raise ValueError: The text is not a size.
    """
    if text is None or text == "":
        return None
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"invalid size {text!r} (expected e.g. 100, 512k, 1m, 2g)")
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


_SEQUENCE_SPECS = (
    collections.abc.Sequence[str],
    list[str],
    typing.List[str],
    tuple[str, ...],
    typing.Tuple[str, ...],
)


def _normalise(typespec: object) -> object:
    """
    The spellings of a list of strings all mean C{Sequence[str]}.
    """
    if typespec in _SEQUENCE_SPECS:
        return Sequence[str]
    return typespec


class Option:
    """
    One option: its name, type, default, help text and allowed choices
    (strings for a C{str} option, numbers for an C{int} option such as
    C{flow_detail}).

    @ivar typespec: one of C{bool}, C{int}, C{float}, C{str},
        C{Optional[str]}, C{Optional[int]}, C{Sequence[str]} (also accepted
        as C{collections.abc.Sequence[str]}, C{list[str]} or
        C{typing.List[str]}).
    """

    __slots__ = ("name", "typespec", "default", "help", "choices", "value")

    def __init__(
        self,
        name: str,
        typespec: object,
        default: Any,
        help: str,
        choices: Optional[Sequence[str | int]] = None,
    ) -> None:
        self.name = name
        self.typespec = _normalise(typespec)
        self.help = help
        self.choices = list(choices) if choices is not None else None
        self.default = self.check(default)
        self.value = self.default

    @property
    def is_sequence(self) -> bool:
        """
        Whether the option holds a list of strings.
        """
        return self.typespec == Sequence[str]

    def type_name(self) -> str:
        """
        The type as shown in help text and error messages.
        """
        return {
            bool: "bool",
            int: "int",
            float: "float",
            str: "str",
            Optional[str]: "optional str",
            Optional[int]: "optional int",
            Sequence[str]: "sequence of str",
        }.get(self.typespec, repr(self.typespec))

    def check(self, value: Any) -> Any:
        """
        Return C{value} if it fits this option's type and choices.

        @raise OptionsError: It does not.
        """
        spec = self.typespec
        ok: bool
        if spec is bool:
            ok = isinstance(value, bool)
        elif spec is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif spec is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                value = float(value)
        elif spec is str:
            ok = isinstance(value, str)
        elif spec == Optional[str]:
            ok = value is None or isinstance(value, str)
        elif spec == Optional[int]:
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        elif spec == Sequence[str]:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            if ok:
                value = list(value)
        else:
            raise OptionsError(f"option {self.name}: unsupported type {spec!r}")
        if not ok:
            raise OptionsError(
                f"option {self.name}: expected {self.type_name()}, got {value!r}"
            )
        if self.choices is not None and value is not None:
            for v in value if self.is_sequence else [value]:
                if v not in self.choices:
                    raise OptionsError(f"option {self.name}: {v!r} is not one of {self.choice_list()}")
        return value

    def choice_list(self) -> str:
        """
        The allowed choices, comma-separated (empty when any value goes).
        """
        return ", ".join(str(choice) for choice in self.choices or ())

    def parse(self, text: str) -> Any:
        """
        Convert the text of C{--set name=text} into a value of this type.

        @raise OptionsError: The text does not fit.
        """
        spec = self.typespec
        try:
            if spec is bool:
                lowered = text.strip().lower()
                if lowered in _TRUE:
                    return True
                if lowered in _FALSE:
                    return False
                raise ValueError(text)
            if spec is int:
                return int(text)
            if spec is float:
                return float(text)
            if spec == Optional[int]:
                return None if text.strip() == "" else int(text)
            if spec == Optional[str]:
                return None if text == "" else text
            if spec == Sequence[str]:
                return [] if text == "" else [text]
            return text
        except ValueError:
            expected = "true or false" if spec is bool else f"a value of type {self.type_name()}"
            raise OptionsError(f"option {self.name}: invalid value {text!r}, expected {expected}") from None


class Options:
    """
    The proxy's configuration: a set of typed options.

    Read an option as an attribute (C{options.mode}); change options with
    L{update} (or by assigning the attribute), which validates every value
    first and tells subscribers which names changed.
    """

    # (Set with object.__setattr__: assigning an attribute sets an option.)
    _options: dict[str, Option]
    _subscribers: list[Callable[[Options, builtins.set[str]], None]]
    _deferred: dict[str, list[str]]

    def __init__(self) -> None:
        object.__setattr__(self, "_options", {})
        object.__setattr__(self, "_subscribers", [])
        object.__setattr__(self, "_deferred", {})

    def add_option(
        self,
        name: str,
        typespec: object,
        default: Any,
        help: str,
        choices: Optional[Sequence[str | int]] = None,
    ) -> None:
        """
        Declare an option.  Declaring an existing name again with the same
        type keeps its current value (a reloaded script re-declares its
        options).

        @raise OptionsError: The default does not fit the type, or the name
            exists with another type.
        """
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise OptionsError(f"option {name!r}: not a valid option name")
        if hasattr(type(self), name):
            raise OptionsError(f"option {name}: the name is taken by an Options method")
        existing = self._options.get(name)
        if existing is not None:
            if existing.typespec != _normalise(typespec):
                raise OptionsError(
                    f"option {name} is already declared with type {existing.type_name()}"
                )
            return
        option = self._options[name] = Option(name, typespec, default, help, choices)
        # Values also live in the instance dict: reading an option is then a
        # plain attribute lookup (the proxy reads some per request).
        self.__dict__[name] = option.value
        self._apply_deferred(name)

    def subscribe(self, callback: Callable[["Options", set[str]], None]) -> None:
        """
        Call C{callback(options, updated_names)} after every change.  An
        L{OptionsError} raised by it rolls the change back.
        """
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[["Options", set[str]], None]) -> None:
        """
        Stop calling C{callback}.
        """
        self._subscribers.remove(callback)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._options[name].value
        except KeyError:
            raise AttributeError(f"no option named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.update(**{name: value})

    def __contains__(self, name: str) -> bool:
        return name in self._options

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._options)

    def keys(self) -> set[str]:
        """
        Every option name.
        """
        return set(self._options)

    def items(self) -> Iterable[tuple[str, Any]]:
        """
        (name, value) pairs, sorted by name.
        """
        return [(n, self._options[n].value) for n in sorted(self._options)]

    def option(self, name: str) -> Option:
        """
        The L{Option} declaring C{name}.

        @raise OptionsError: No such option.
        """
        try:
            return self._options[name]
        except KeyError:
            raise OptionsError(f"unknown option {name!r}{did_you_mean(name, self._options)}") from None

    def update(self, **values: Any) -> set[str]:
        """
        Change options; all or nothing.

        @return: The names whose value changed.
        @raise OptionsError: An unknown name or a bad value, or a subscriber
            rejected the change; nothing changed.
        """
        checked = {name: self.option(name).check(value) for name, value in values.items()}
        previous = {name: self._options[name].value for name in checked}
        changed = {name for name, value in checked.items() if previous[name] != value}
        for name in changed:
            self._options[name].value = self.__dict__[name] = checked[name]
        if changed:
            try:
                self._notify(changed)
            except BaseException:
                for name in changed:
                    self._options[name].value = self.__dict__[name] = previous[name]
                self._renotify(changed)
                raise
        return changed

    def _renotify(self, changed: set[str]) -> None:
        # After a rollback, subscribers that already saw the rejected values
        # are told about the restored ones.
        for callback in list(self._subscribers):
            try:
                callback(self, set(changed))
            except Exception:
                _log.failure(
                    "Error while restoring options {names}", names=", ".join(sorted(changed))
                )

    def _notify(self, changed: set[str]) -> None:
        for callback in list(self._subscribers):
            callback(self, set(changed))

    def set(self, *specs: str, defer: bool = False) -> set[str]:
        """
        Apply C{name=value} strings, as given to C{--set}.  Repeating a
        sequence option appends to it; C{name} alone sets a bool to true.

        @param defer: Keep specs naming unknown options (ones a script not
            loaded yet will declare) and apply them when the option is
            declared; L{deferred} lists the names still waiting.
        @raise OptionsError: A malformed spec, unknown name (unless
            deferred) or bad value.
        """
        values: dict[str, Any] = {}
        waiting: dict[str, list[str]] = {}
        for spec in specs:
            name, sep, text = spec.partition("=")
            name = name.strip()
            if defer and name not in self._options:
                waiting.setdefault(name, []).append(spec)
                continue
            if not sep and name not in self._options:
                raise OptionsError(
                    f"--set {spec}: expected NAME=VALUE{did_you_mean(name, self._options)}"
                )
            option = self.option(name)
            if not sep:
                if option.typespec is not bool:
                    raise OptionsError(f"option {name}: expected {name}=VALUE")
                values[name] = True
            elif option.is_sequence and name in values:
                values[name] = values[name] + option.parse(text)
            else:
                values[name] = option.parse(text)
        changed = self.update(**values)
        for name, held in waiting.items():
            self._deferred[name] = held
        return changed

    @property
    def deferred(self) -> builtins.set[str]:
        """
        Names given to L{set} with C{defer=True} that no option has been
        declared for yet.
        """
        return set(self._deferred)

    def _apply_deferred(self, name: str) -> None:
        held = self._deferred.pop(name, None)
        if held is None:
            return
        try:
            self.set(*held)
        except OptionsError as e:
            _log.error("{error}; it keeps its default", error=str(e))

    def reset(self) -> builtins.set[str]:
        """
        Put every option back to its default.
        """
        return self.update(**{n: o.default for n, o in self._options.items()})

    def help_text(self) -> str:
        """
        A listing of every option with its type, default and help.
        """
        lines = []
        for name in sorted(self._options):
            o = self._options[name]
            choices = f" (one of {o.choice_list()})" if o.choices else ""
            lines.append(f"{name} ({o.type_name()}, default {o.default!r}){choices}\n    {o.help}")
        return "\n".join(lines)


def proxy_options(**values: Any) -> Options:
    """
    Return L{Options} holding the core proxy's options, then apply
    C{values}.  Addons declare their own options on top (see
    L{interceptor.addonmanager.Loader}).
    """
    opts = Options()
    add = opts.add_option
    add(
        "mode",
        str,
        "regular",
        "The proxy mode: regular, upstream:http://HOST:PORT (through another "
        "HTTP proxy), reverse:http[s]://HOST[:PORT] (act as that server), "
        "transparent (Linux, iptables REDIRECT), socks5.",
    )
    add("confdir", str, "~/.interceptor", "Where the proxy keeps its CA and state.")
    add("tick_interval", float, 0.1, "Seconds between two tick events.")
    add(
        "stream_large_bodies",
        Optional[str],
        "256m",
        "Stream bodies larger than this (e.g. 1m) instead of buffering them; "
        "the response event then sees no content.  256m by default, so one "
        "big download cannot take the proxy's memory; empty buffers every "
        "body, as mitmproxy does.",
    )
    add(
        "body_size_limit",
        Optional[str],
        None,
        "Refuse bodies larger than this (e.g. 10m) with a clear error.",
    )
    add(
        "max_decoded_size",
        str,
        "64m",
        "Largest body the proxy decodes (Content-Encoding gzip, deflate, br, "
        "zstd) for addons and the flow output: reading a body's content "
        "that decodes to more (or to more than body_size_limit) raises "
        "interceptor.encoding.DecodedSizeError; the body itself still goes "
        "through unchanged.",
    )
    add("connect_timeout", float, 10.0, "Seconds to wait for an upstream connection.")
    add(
        "read_timeout",
        float,
        60.0,
        "Seconds a client or server may stay silent while a request or "
        "response is in progress and the proxy is waiting for it (not while "
        "the other side holds it back).",
    )
    add("idle_timeout", float, 300.0, "Seconds an idle keep-alive client connection stays open.")
    add(
        "header_timeout",
        float,
        60.0,
        "Seconds a client may take over a whole HTTP/1 request head, however "
        "often it sends a byte (as nginx's client_header_timeout).",
    )
    add("max_header_size", int, 65536, "Largest accepted header block, in bytes.")
    add(
        "ca_file",
        Optional[str],
        None,
        "A PEM file with your own CA's private key and certificate, used "
        "instead of the one in confdir.",
    )
    add("ssl_insecure", bool, False, "Do not verify upstream servers' certificates.")
    add(
        "http2",
        bool,
        True,
        "Offer HTTP/2 (ALPN h2) to clients and servers; off, only http/1.1 is offered.",
    )
    add(
        "http2_translate",
        bool,
        False,
        "Speak HTTP/2 to clients that offer it even when the server speaks only "
        "HTTP/1.1, and offer h2 to servers even for HTTP/1.1 clients; the proxy "
        "translates between the two.  Off, each side gets what the other chose.",
    )
    add(
        "http2_max_resets",
        int,
        200,
        "Stream resets (RST_STREAM) an HTTP/2 client may send per "
        "http2_flood_window; one more and its connection gets GOAWAY "
        "ENHANCE_YOUR_CALM and is closed (rapid reset, CVE-2023-44487). 0: no limit.",
    )
    add(
        "http2_max_empty_frames",
        int,
        100,
        "DATA frames without payload or end of stream an HTTP/2 client may "
        "send per http2_flood_window (then GOAWAY ENHANCE_YOUR_CALM). 0: no limit.",
    )
    add(
        "http2_max_control_frames",
        int,
        1000,
        "SETTINGS and PING frames an HTTP/2 client may send per "
        "http2_flood_window (then GOAWAY ENHANCE_YOUR_CALM). 0: no limit.",
    )
    add(
        "http2_flood_window",
        float,
        10.0,
        "Seconds over which the http2_max_* frame limits count.",
    )
    add(
        "websocket",
        bool,
        True,
        "Relay WebSocket connections message by message, with the websocket_* "
        "events; off, upgraded connections are relayed as raw bytes.",
    )
    add(
        "websocket_history_size",
        Optional[str],
        "16m",
        "WebSocket messages kept in flow.websocket.messages: the oldest are "
        "dropped once the kept contents exceed this size (the newest is always "
        "kept); empty keeps every message, as mitmproxy does.",
    )
    add(
        "websocket_max_message_size",
        Optional[str],
        "64m",
        "Largest WebSocket message the proxy relays (each one is held whole "
        "for the addons): a bigger one closes the connection with 1009; "
        "empty for no limit.  body_size_limit, when smaller, bounds it too.",
    )
    add(
        "tcp_history_size",
        Optional[str],
        "16m",
        "Raw TCP messages kept in flow.messages (when an addon handles TCP "
        "events, as the flow output does): once the kept contents exceed this "
        "size the oldest are dropped, down to half of it (the newest is always "
        "kept); empty keeps every message, as mitmproxy does.",
    )
    add(
        "ssl_verify_upstream_trusted_ca",
        Optional[str],
        None,
        "A PEM file of CA certificates trusted for upstream servers, besides the system's.",
    )
    add(
        "upstream_cert",
        bool,
        True,
        "Copy the names in the upstream's certificate into the certificate "
        "minted for the client.",
    )
    add(
        "ignore_hosts",
        Sequence[str],
        [],
        "Regexes on host:port; matching TLS connections are passed through "
        "untouched, undecrypted.",
    )
    add(
        "allow_hosts",
        Sequence[str],
        [],
        "Regexes on host:port; only matching TLS connections are intercepted, "
        "the others are passed through.",
    )
    add(
        "tcp_hosts",
        Sequence[str],
        [],
        "Regexes on host:port; matching connections (and CONNECT tunnels) are "
        "relayed as raw TCP, with the tcp_* events.",
    )
    add(
        "upstream_auth",
        Optional[str],
        None,
        "user:pass sent to the upstream proxy as Proxy-Authorization (Basic) "
        "in upstream mode.",
    )
    add(
        "keep_host_header",
        bool,
        False,
        "Reverse mode: keep the client's Host header instead of naming the "
        "reverse target.",
    )
    add(
        "connection_strategy",
        str,
        "eager",
        "When server connections are opened: eager (as soon as the "
        "destination is known) or lazy (only once data must go there).",
        choices=["eager", "lazy"],
    )
    add(
        "fast_paths",
        bool,
        True,
        "Use the fast paths that reach into Twisted's and pyOpenSSL's internals "
        "(direct socket writes, TLS records through OpenSSL directly, socket-to-"
        "socket body relay, malloc thresholds for twistd); off, Twisted's own code "
        "does all of it, slower. They are off for the whole process while a proxy "
        "with this off listens, and whenever INTERCEPTOR_FAST_PATHS=0.",
    )
    opts.subscribe(_check_mode)
    opts.subscribe(_check_sizes_and_patterns)
    opts.subscribe(_check_http2_limits)
    opts.subscribe(_check_positive)
    if values:
        opts.update(**values)
    return opts


_SIZE_OPTIONS = (
    "body_size_limit",
    "stream_large_bodies",
    "websocket_history_size",
    "websocket_max_message_size",
    "tcp_history_size",
    "max_decoded_size",
)
_POSITIVE_OPTIONS = (
    "connect_timeout",
    "read_timeout",
    "idle_timeout",
    "header_timeout",
    "tick_interval",
    "max_header_size",
)


def _check_positive(options: Options, updated: set[str]) -> None:
    """
    Reject a timeout, interval or size that is not a finite number above 0
    (C{connect_timeout=-1} used to be taken, and to fail every connection).
    """
    for name in updated.intersection(_POSITIVE_OPTIONS):
        value = getattr(options, name)
        if not (value > 0 and math.isfinite(value)):
            raise OptionsError(f"option {name}: must be a number above 0, got {value!r}")


_PATTERN_OPTIONS = ("ignore_hosts", "allow_hosts", "tcp_hosts")


def _check_sizes_and_patterns(options: Options, updated: set[str]) -> None:
    """
    Reject a size that does not parse and a host pattern that is not a
    regular expression, when they are set (not when a connection first
    needs them, when a typo would silently turn a limit off).
    """
    for name in updated.intersection(_SIZE_OPTIONS):
        try:
            size = parse_size(getattr(options, name))
        except ValueError as e:
            raise OptionsError(f"option {name}: {e}") from None
        if name == "max_decoded_size" and not size:
            raise OptionsError(f"option {name}: must be a size of at least 1 byte, e.g. 64m")
    for name in updated.intersection(_PATTERN_OPTIONS):
        for pattern in getattr(options, name):
            try:
                re.compile(pattern)
            except re.error as e:
                raise OptionsError(f"option {name}: invalid pattern {pattern!r}: {e}") from None


_HTTP2_LIMITS = ("http2_max_resets", "http2_max_empty_frames", "http2_max_control_frames")


def _check_http2_limits(options: Options, updated: set[str]) -> None:
    """
    Reject a negative HTTP/2 frame limit, and a window that is not positive.
    """
    for name in updated.intersection(_HTTP2_LIMITS):
        if getattr(options, name) < 0:
            raise OptionsError(f"option {name}: must be 0 (no limit) or more")
    if "http2_flood_window" in updated and not options.http2_flood_window > 0:
        raise OptionsError("option http2_flood_window: must be more than 0 seconds")


def _check_mode(options: Options, updated: set[str]) -> None:
    """
    Reject a C{mode} that does not parse (the change is rolled back).
    """
    if "mode" in updated:
        from interceptor.transport.modes import parse_mode

        try:
            parse_mode(options.mode)
        except ValueError as e:
            raise OptionsError(f"option mode: {e}") from None
