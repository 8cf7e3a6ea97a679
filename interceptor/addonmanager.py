"""
The stable public import path of the addon manager; the code lives in
L{interceptor.core.addonmanager}, which this module re-exports.
"""

from interceptor.core.addonmanager import *  # noqa: F401,F403
from interceptor.core.addonmanager import near_misses  # noqa: F401
