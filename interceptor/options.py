"""
The stable public import path of options; the code lives in
L{interceptor.core.options}, which this module re-exports.
"""

from interceptor.core.options import *  # noqa: F401,F403
