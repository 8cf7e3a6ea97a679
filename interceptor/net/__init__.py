"""
Import paths of mitmproxy 2.x's C{mitmproxy.net} that scripts use
(C{from mitmproxy.net.http import Headers}): they re-export the model.
"""
