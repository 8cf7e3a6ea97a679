"""
The stable public import path of client and server connections; the code
lives in L{interceptor.model.connection}, which this module re-exports.
"""

from interceptor.model.connection import *  # noqa: F401,F403
