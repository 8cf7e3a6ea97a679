# -*- test-case-name: tests.compat.test_surface -*-
"""
interceptor's version, as mitmproxy's C{mitmproxy.version} gives its own::

    from interceptor import version

    def load(loader):
        print("running on", version.MITMPROXY)     # "interceptor 0.1.0"
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["VERSION", "MITMPROXY", "INTERCEPTOR"]


def _installed_version() -> str:
    """
    The version the installed distribution declares (setup.py's
    C{version}).

    @raise RuntimeError: interceptor is imported without being installed
        (then no version is known; install it with C{pip install -e .}).
    """
    try:
        return metadata.version("interceptor")
    except metadata.PackageNotFoundError as e:
        raise RuntimeError(
            "interceptor.version: the interceptor distribution is not installed "
            "(pip install -e . in the checkout), so its version is unknown") from e


VERSION: str = _installed_version()
"""The version, e.g. C{"0.1.0"}."""

INTERCEPTOR: str = "interceptor " + VERSION
"""Name and version, e.g. C{"interceptor 0.1.0"}."""

MITMPROXY: str = INTERCEPTOR
"""mitmproxy's name for L{INTERCEPTOR}."""
