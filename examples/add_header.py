# -*- test-case-name: tests.e2e.test_examples_http -*-
"""
Add a header to every request and to every response.

    twistd -n interceptor --addon examples/add_header.py
    curl -x http://127.0.0.1:8080 -i http://example.org/    # shows X-Interceptor: response

The server sees C{X-Interceptor: request}; the client sees
C{X-Interceptor: response}.
"""


def request(flow):
    """
    Mark the request on its way to the server.
    """
    flow.request.headers["X-Interceptor"] = "request"


def response(flow):
    """
    Mark the response on its way back to the client.
    """
    flow.response.headers["X-Interceptor"] = "response"
