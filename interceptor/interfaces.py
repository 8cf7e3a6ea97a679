"""
The stable public import path of the addon event interfaces; the code lives
in L{interceptor.core.interfaces}, which this module re-exports.
"""

from interceptor.core.interfaces import *  # noqa: F401,F403
