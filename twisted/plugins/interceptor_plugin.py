"""The C{twistd interceptor} plugin."""

from twisted.application.service import ServiceMaker

interceptor = ServiceMaker(
    "interceptor",
    "interceptor.core.tap",
    "An intercepting HTTP/HTTPS/WebSocket/TCP proxy with Python addons.",
    "interceptor",
)
