"""
The stable public import path of the twistd plugin's options and
makeService; the code lives in L{interceptor.core.tap}, which this module
re-exports.
"""

from interceptor.core.tap import *  # noqa: F401,F403
from interceptor.core.tap import apply_command_line, build_master  # noqa: F401
