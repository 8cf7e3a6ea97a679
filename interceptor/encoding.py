"""
The stable public import path of content encodings; the code lives in
L{interceptor.model.encoding}, which this module re-exports.
"""

from interceptor.model.encoding import *  # noqa: F401,F403
