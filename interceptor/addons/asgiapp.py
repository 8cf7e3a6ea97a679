"""
mitmproxy 12 keeps C{WSGIApp} in C{mitmproxy.addons.asgiapp}: scripts
importing it from there get L{interceptor.addons.wsgiapp.WSGIApp}.  (ASGI
applications themselves are not served.)
"""

from interceptor.addons.wsgiapp import WSGIApp

__all__ = ["WSGIApp"]
