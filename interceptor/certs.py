"""
The stable public import path of the CA and leaf certificates; the code
lives in L{interceptor.tls.certs}, which this module re-exports.
"""

from interceptor.tls.certs import *  # noqa: F401,F403
from interceptor.tls.certs import PrivateKey  # noqa: F401
