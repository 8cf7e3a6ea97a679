"""
The stable public import path of the WebSocket flow model; the code lives in
L{interceptor.model.websocket}, which this module re-exports.
"""

from interceptor.model.websocket import *  # noqa: F401,F403
