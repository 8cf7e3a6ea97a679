"""
The stable public import path of the TCP flow model; the code lives in
L{interceptor.model.tcp}, which this module re-exports.
"""

from interceptor.model.tcp import *  # noqa: F401,F403
