"""
The flow model: HTTP messages, flows, connections, WebSocket and TCP
messages, content encodings and WebSocket framing.  Plain Python, no
Twisted: everything else in interceptor builds on it.
"""
