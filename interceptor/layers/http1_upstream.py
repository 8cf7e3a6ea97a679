"""
The former path of the HTTP/1 server connection: now
L{interceptor.layers.http1_server.Http1ServerConnection} (C{UpstreamProtocol}
remains its alias).  Kept so addons importing it keep working.
"""

from interceptor.layers.http1_server import Http1ServerConnection, UpstreamProtocol

__all__ = ["Http1ServerConnection", "UpstreamProtocol"]
