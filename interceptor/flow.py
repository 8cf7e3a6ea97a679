"""
The stable public import path of flows (Flow, HTTPFlow, Error); the code
lives in L{interceptor.model.flow}, which this module re-exports.
"""

from interceptor.model.flow import *  # noqa: F401,F403
