# -*- test-case-name: tests.compat.test_surface -*-
"""
str/bytes conversions and escaping, with the names and behaviour of
mitmproxy's C{mitmproxy.utils.strutils} that scripts rely on::

    from interceptor.utils import strutils

    def response(flow):
        body = flow.response.raw_content or b""
        if strutils.is_mostly_bin(body):
            print(strutils.bytes_to_escaped_str(body[:40]))
        pattern = strutils.escaped_str_to_bytes(r"\\x00secret")   # b"\\x00secret"
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TypeVar, overload

__all__ = [
    "always_bytes",
    "always_str",
    "bytes_to_escaped_str",
    "clean_bin",
    "clean_hanging_newline",
    "escape_control_characters",
    "escaped_str_to_bytes",
    "hexdump",
    "is_mostly_bin",
    "is_xml",
]

_T = TypeVar("_T", str, bytes)


@overload
def always_bytes(str_or_bytes: None, *encode_args: str) -> None: ...


@overload
def always_bytes(str_or_bytes: str | bytes, *encode_args: str) -> bytes: ...


def always_bytes(str_or_bytes: str | bytes | None, *encode_args: str) -> bytes | None:
    """
    C{str_or_bytes} as bytes: bytes and None unchanged, a str encoded.

    @param encode_args: What C{str.encode} takes (encoding, errors);
        UTF-8 when none.
    @raise TypeError: For anything else than str, bytes or None.
    """
    if isinstance(str_or_bytes, str):
        return str_or_bytes.encode(*encode_args)
    return _unconverted(str_or_bytes, bytes, "always_bytes")


@overload
def always_str(str_or_bytes: None, *decode_args: str) -> None: ...


@overload
def always_str(str_or_bytes: str | bytes, *decode_args: str) -> str: ...


def always_str(str_or_bytes: str | bytes | None, *decode_args: str) -> str | None:
    """
    C{str_or_bytes} as str: L{always_bytes} the other way round (str and
    None unchanged, bytes decoded with C{decode_args}, what C{bytes.decode}
    takes; UTF-8 when none).
    """
    if isinstance(str_or_bytes, bytes):
        return str_or_bytes.decode(*decode_args)
    return _unconverted(str_or_bytes, str, "always_str")


def _unconverted(value: object, kind: type[_T], caller: str) -> _T | None:
    """
    C{value} as it is when it is None or a C{kind} already (what
    L{always_bytes} and L{always_str} do not convert).

    @raise TypeError: C{value} is something else (C{caller} names the function).
    """
    if value is None or isinstance(value, kind):
        return value
    raise TypeError(f"{caller}: expected str or bytes, got {type(value).__name__}")


_SPACING = "\t\n\r"
_CONTROL = {code: "." for code in (*range(32), 127)}
_CONTROL_BUT_SPACING = {code: dot for code, dot in _CONTROL.items() if chr(code) not in _SPACING}


def escape_control_characters(text: str, keep_spacing: bool = True) -> str:
    """
    C{text} with each C0 control character and DEL replaced by C{"."}.

    @param keep_spacing: Keep tabs, carriage returns and newlines.
    @raise ValueError: C{text} is not a str.
    """
    if not isinstance(text, str):
        raise ValueError(f"escape_control_characters: text must be str, not {type(text).__name__}")
    return text.translate(_CONTROL_BUT_SPACING if keep_spacing else _CONTROL)


_SPACING_BYTES = re.compile(b"([\t\n\r]+)")


def _escaped(data: bytes) -> str:
    """
    C{data} with Python's escapes for what is not printable ASCII (the
    C{unicode_escape} codec writes each latin-1 code point as a bytes
    literal would).
    """
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


def bytes_to_escaped_str(data: bytes, keep_spacing: bool = False, escape_single_quotes: bool = False) -> str:
    """
    C{data} as a str safe to show: printable ASCII as it is, the rest as
    Python escapes (C{\\n}, C{\\x00}, backslash doubled).
    L{escaped_str_to_bytes} turns it back into C{data}.

    @param keep_spacing: Leave tabs, newlines and carriage returns as they are.
    @param escape_single_quotes: Write C{'} as C{\\'} (to quote the result
        in single quotes).
    @raise ValueError: C{data} is not bytes.
    """
    if not isinstance(data, bytes):
        raise ValueError(f"bytes_to_escaped_str: data must be bytes, not {type(data).__name__}")
    if keep_spacing:
        # (split with a group: the spacing runs are the odd pieces)
        pieces = _SPACING_BYTES.split(data)
        text = "".join(piece.decode("ascii") if i % 2 else _escaped(piece) for i, piece in enumerate(pieces))
    else:
        text = _escaped(data)
    return text.replace("'", "\\'") if escape_single_quotes else text


_SIMPLE_ESCAPES = {
    "\\": b"\\", "'": b"'", '"': b'"', "a": b"\a", "b": b"\b", "f": b"\f",
    "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v", "\n": b"",
}
# The escapes the unicode_escape codec reads as a bytes literal does; any
# other backslash (\u, \N, unknown escapes, a lone one, a short \x) is not.
_LITERAL_ESCAPE = re.compile(r"\\(?:[\\'\"abfnrtv0-7\n]|x[0-9a-fA-F]{2})")
# A run of \xHH escapes is converted at once.
_ESCAPE = re.compile(r"((?:\\x[0-9a-fA-F]{2})+)|\\(x|[0-7]{1,3}|.|\n|$)")


def escaped_str_to_bytes(data: str) -> bytes:
    """
    The bytes an escaped str stands for, as in a Python bytes literal:
    C{r"\\x00ab\\n"} is C{b"\\x00ab\\n"}; characters beyond ASCII are
    UTF-8 encoded; an unknown escape (C{\\q}) is kept as it is.

    @raise ValueError: C{data} is not a str, or ends in a lone backslash,
        or has a C{\\x} without two hex digits (the message says where).
    """
    if not isinstance(data, str):
        raise ValueError(f"escaped_str_to_bytes: data must be str, not {type(data).__name__}")
    if "\\" not in data:
        return data.encode("utf-8", "surrogateescape")
    if data.isascii() and "\\" not in _LITERAL_ESCAPE.sub("", data):
        # Only escapes a bytes literal has: the unicode_escape codec reads
        # them in C (code points up to 0xff, as latin-1).
        try:
            return data.encode("ascii").decode("unicode_escape").encode("latin-1")
        except UnicodeEncodeError:
            pass  # an octal escape above \377: kept to its low byte below
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(data):
        out += data[position:match.start()].encode("utf-8", "surrogateescape")
        position = match.end()
        hex_run, escape = match.groups()
        if hex_run is not None:
            out += bytes.fromhex(hex_run.replace("\\x", ""))
            continue
        if escape == "":
            raise ValueError(f"escaped_str_to_bytes: lone backslash at the end of {data!r}")
        if escape == "x":
            raise ValueError(
                f"escaped_str_to_bytes: \\x without two hex digits at position {match.start()} of {data!r}")
        if escape[0] in "01234567":
            out.append(int(escape, 8) & 0xFF)
        elif escape in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[escape]
        else:
            out += match.group(0).encode("utf-8", "surrogateescape")
    out += data[position:].encode("utf-8", "surrogateescape")
    return bytes(out)


def is_mostly_bin(s: bytes) -> bool:
    """
    Whether C{s} looks like binary data rather than text, judged by about
    its first 100 bytes: mostly printable ASCII, or valid UTF-8 with few
    control characters, is text.
    """
    if not s:
        return False
    sample = s
    if len(s) > 100:
        # Cut where a character starts, not inside a UTF-8 sequence.
        end = min(len(s), 104)
        cut = 100
        while cut < end and (s[cut] & 0xC0) == 0x80:
            cut += 1
        sample = s[:cut] if cut < end else s[:100]
    controls = sum(1 for byte in sample if byte < 9 or 13 < byte < 32)
    high = sum(1 for byte in sample if byte > 126)
    printable = len(sample) - controls - high
    if printable / len(sample) > 0.7:
        return False
    if (printable + high) / len(sample) > 0.95:
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False
    return True


def is_xml(s: bytes) -> bool:
    """
    Whether the first character of C{s} that is not XML whitespace is C{<}.
    """
    stripped = s.lstrip(b" \t\r\n")
    return stripped[:1] == b"<"


_KEPT_SPACING = frozenset(b"\t\n\r")


@overload
def clean_bin(s: str, keep_spacing: bool = True) -> str: ...


@overload
def clean_bin(s: bytes, keep_spacing: bool = True) -> bytes: ...


def clean_bin(s: str | bytes, keep_spacing: bool = True) -> str | bytes:
    """
    C{s} with every character that cannot be shown replaced by C{"."}
    (mitmproxy 2.x): for bytes, all but printable ASCII; for a str, all
    that is not printable.

    @param keep_spacing: Keep tabs, newlines and carriage returns.
    @raise TypeError: C{s} is neither str nor bytes.
    """
    kept = _KEPT_SPACING if keep_spacing else frozenset()
    if isinstance(s, str):
        return "".join(ch if ch.isprintable() or ord(ch) in kept else "." for ch in s)
    if isinstance(s, bytes):
        return bytes(byte if 31 < byte < 127 or byte in kept else 46 for byte in s)
    raise TypeError(f"clean_bin: expected str or bytes, got {type(s).__name__}")


def clean_hanging_newline(t: str) -> str:
    """
    C{t} without one trailing newline (which editors add to files).
    """
    return t[:-1] if t.endswith("\n") else t


def hexdump(s: bytes) -> Iterator[tuple[str, str, str]]:
    """
    C{s} as hexdump lines: (offset, hex bytes, printable characters), 16
    bytes a line.
    """
    for offset in range(0, len(s), 16):
        part = s[offset:offset + 16]
        hex_part = " ".join(f"{byte:02x}" for byte in part).ljust(47)
        yield f"{offset:010x}", hex_part, clean_bin(part, keep_spacing=False).decode("ascii")
