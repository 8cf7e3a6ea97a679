"""
The stable public import path of the certificate store and upstream TLS
contexts of a master; the code lives in L{interceptor.tls.contexts}, which
this module re-exports.
"""

from interceptor.tls.contexts import *  # noqa: F401,F403
