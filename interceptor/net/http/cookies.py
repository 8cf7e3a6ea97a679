"""
mitmproxy 2.x's C{mitmproxy.net.http.cookies} helpers that scripts call
(its C{har_dump} example among them).
"""

from __future__ import annotations

import email.utils
import time
from typing import Optional, Sequence

from interceptor.model.cookies import CookieAttrs

__all__ = ["CookieAttrs", "get_expiration_ts", "is_expired", "group_cookies"]

# The attribute names of a Set-Cookie (the rest of a flat list are cookies).
_ATTRIBUTES = frozenset({"expires", "path", "comment", "max-age", "secure", "httponly", "version"})


def get_expiration_ts(attrs: CookieAttrs) -> Optional[float]:
    """
    When a cookie with C{attrs} expires (its C{Expires}, else now plus its
    C{Max-Age}), or None when it does not say.
    """
    if "expires" in attrs:
        parsed = email.utils.parsedate_tz(attrs["expires"] or "")
        if parsed:
            return float(email.utils.mktime_tz(parsed))
    elif "max-age" in attrs:
        try:
            return time.time() + int(attrs["max-age"] or "")
        except ValueError:
            pass
    return None


def is_expired(attrs: CookieAttrs) -> bool:
    """
    Whether a cookie with C{attrs} has expired.
    """
    expires = get_expiration_ts(attrs)
    return expires is not None and expires <= time.time()


def group_cookies(pairs: Sequence[tuple[str, Optional[str]]]) -> list[tuple[str, Optional[str], CookieAttrs]]:
    """
    A flat list of C{(name, value)} pairs, cookies and their attributes
    mixed, as C{(name, value, attrs)} per cookie.
    """
    cookies: list[tuple[str, Optional[str], CookieAttrs]] = []
    if not pairs:
        return cookies
    name, value = pairs[0]
    attrs: list[tuple[str, Optional[str]]] = []
    for key, item in pairs[1:]:
        if key.lower() in _ATTRIBUTES:
            attrs.append((key, item))
        else:
            cookies.append((name, value, CookieAttrs(attrs)))
            name, value, attrs = key, item, []
    cookies.append((name, value, CookieAttrs(attrs)))
    return cookies
