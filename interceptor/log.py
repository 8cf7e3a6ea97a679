"""
The stable public import path of logging; the code lives in
L{interceptor.core.log}, which this module re-exports (with mitmproxy's
C{ALERT} level: C{logging.log(interceptor.log.ALERT, "look!")}).
"""

from interceptor.core.log import *  # noqa: F401,F403
from interceptor.core.log import terminal_claims  # noqa: F401
