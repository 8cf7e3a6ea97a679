# -*- test-case-name: tests.e2e.test_examples_tls -*-
"""
Rewrite the body of HTTPS responses: replace one word with another.

    twistd -n interceptor --addon examples/https_rewrite.py
    curl -x http://127.0.0.1:8080 --cacert ~/.interceptor/interceptor-ca-cert.pem \\
        https://example.org/

HTTPS is intercepted once the client trusts the proxy's CA (the
C{interceptor-ca-cert.pem} in the confdir, or from C{http://interceptor.it/}
through the proxy).  Only text responses of HTTPS requests are changed;
their Content-Length is fixed up by the proxy.
"""

OLD = "world"
NEW = "interceptor"


def response(flow):
    """
    Replace OLD with NEW in the text of an HTTPS response.
    """
    if flow.request.scheme != "https" or flow.response.content is None:
        return
    content_type = flow.response.headers.get("content-type", "")
    if not content_type.startswith("text/"):
        return
    text = flow.response.text
    if text is not None and OLD in text:
        flow.response.text = text.replace(OLD, NEW)
        flow.response.headers["X-Rewritten"] = f"{OLD} -> {NEW}"
