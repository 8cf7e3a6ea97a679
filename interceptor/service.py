"""
The stable public import path of the twistd service; the code lives in
L{interceptor.core.service}, which this module re-exports.
"""

from interceptor.core.service import *  # noqa: F401,F403
