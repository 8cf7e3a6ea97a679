"""
TLS: certificates (L{interceptor.tls.certs}), the handshake side of
interception (L{interceptor.tls.handshake}: ClientHello parsing, the
connection creators, upstream certificate checks) and a master's
certificate store and upstream contexts (L{interceptor.tls.contexts}).

The package re-exports what the module C{interceptor.tls} had, so
C{from interceptor.tls import parse_client_hello} keeps working.
"""

from interceptor.tls.handshake import *  # noqa: F401,F403
from interceptor.tls.handshake import Leaf, looks_like_tls, names_of  # noqa: F401
