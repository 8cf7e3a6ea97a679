"""
The stable public import path of the master; the code lives in
L{interceptor.core.master}, which this module re-exports.
"""

from interceptor.core.master import *  # noqa: F401,F403
