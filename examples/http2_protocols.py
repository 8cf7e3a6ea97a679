# -*- test-case-name: tests.e2e.test_http2 -*-
"""
Tell the client which HTTP version each side of the proxy spoke.

    twistd -n interceptor --addon examples/http2_protocols.py
    curl --http2 -x http://127.0.0.1:8080 --cacert ~/.interceptor/interceptor-ca-cert.pem \\
        -i https://example.org/
    # x-client-http-version: HTTP/2.0
    # x-server-http-version: HTTP/2.0   (or HTTP/1.1 when the server spoke HTTP/1.1)

C{flow.request.http_version} is the version the client used (C{HTTP/2.0}
for an HTTP/2 stream); C{flow.response.http_version} the one the server
answered with.  Works the same on HTTP/1 and HTTP/2 flows.
"""


def response(flow):
    """
    Add the two versions to the response the client gets.
    """
    flow.response.headers["x-client-http-version"] = flow.request.http_version
    flow.response.headers["x-server-http-version"] = flow.response.http_version
