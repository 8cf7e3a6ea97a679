"""
mitmproxy's C{script} module: C{from interceptor.script import concurrent}
(the import path mitmproxy's scripts use) gives L{interceptor.concurrent.concurrent}.
"""

from interceptor.concurrent import concurrent

__all__ = ["concurrent"]
