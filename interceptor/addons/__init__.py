"""
Addons that scripts load by name, as mitmproxy's C{mitmproxy.addons}
modules: L{interceptor.addons.wsgiapp} (a WSGI app at a virtual host) and
L{interceptor.addons.asgiapp} (its C{WSGIApp} under mitmproxy 12's module
name).
"""
