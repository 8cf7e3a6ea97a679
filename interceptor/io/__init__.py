"""
Flow files: recording flows and reading them back.

    from interceptor.io import FlowReader, FlowWriter, read_flows_from_paths

L{FlowWriter} writes interceptor's own format (L{interceptor.io.framing});
L{FlowReader} reads that, mitmproxy's flow files and HAR, sniffing which.
"""

from interceptor.io.exceptions import FlowReadException
from interceptor.io.reader import (
    FlowReader,
    check_flow_files,
    flows_from_paths,
    log_problem,
    read_flows_from_paths,
)
from interceptor.io.writer import FlowWriter

__all__ = [
    "FlowReader",
    "FlowWriter",
    "FlowReadException",
    "check_flow_files",
    "flows_from_paths",
    "log_problem",
    "read_flows_from_paths",
]
