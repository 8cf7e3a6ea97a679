"""
mitmproxy 2.x's C{mitmproxy.net.http} path to the HTTP model
(C{Headers}, C{Request}, C{Response}, ...): the same objects as
L{interceptor.http}.
"""

from interceptor.http import *  # noqa: F401,F403
from interceptor.http import __all__  # noqa: F401
