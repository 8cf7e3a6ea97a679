# -*- test-case-name: tests.e2e.test_tls -*-
"""
Serves the CA certificate to devices: a plain-HTTP request through the
proxy to the magic host C{interceptor.it} gets a small page with the
certificate in each format and how to install it::

    curl -x http://127.0.0.1:8080 http://interceptor.it/cert/pem > ca.pem
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Optional

from zope.interface import implementer

from interceptor.tls.certs import CA_BASENAME
from interceptor.model.http import Response
from interceptor.core.interfaces import IRequest
from interceptor.tls.contexts import certstore_for

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.model.flow import HTTPFlow

__all__ = ["Onboarding", "MAGIC_HOST"]

MAGIC_HOST = "interceptor.it"

_FORMATS = {
    "pem": (".pem", "application/x-x509-ca-cert", "Linux, macOS, Firefox, curl --cacert"),
    "cer": (".cer", "application/x-x509-ca-cert", "Windows, Android"),
    "p12": (".p12", "application/x-pkcs12", "iOS and other devices that take PKCS#12"),
}

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>interceptor CA certificate</title></head>
<body>
<h1>Install the interceptor CA certificate</h1>
<p>Your traffic passes through interceptor. To let it read HTTPS, trust its certificate
authority on this device. Only do this on devices you test with.</p>
<ul>
{items}
</ul>
<h2>How to install</h2>
<ul>
<li><b>Linux</b>: copy the .pem to <code>/usr/local/share/ca-certificates/interceptor.crt</code>
and run <code>update-ca-certificates</code>.</li>
<li><b>macOS</b>: open the .pem, add it to the System keychain, and set it to
<i>Always Trust</i>.</li>
<li><b>Windows</b>: open the .cer, <i>Install Certificate</i>, into
<i>Trusted Root Certification Authorities</i>.</li>
<li><b>Android</b>: Settings, Security, Encryption &amp; credentials, Install a certificate,
CA certificate, pick the .cer.</li>
<li><b>iOS</b>: open the .p12 (or .pem) in Safari, install the profile, then enable full trust
in Settings, General, About, Certificate Trust Settings.</li>
<li><b>Firefox</b>: Settings, Privacy &amp; Security, Certificates, View Certificates,
Authorities, Import the .pem.</li>
</ul>
<p>SHA-256 fingerprint: <code>{fingerprint}</code></p>
</body></html>
"""


@implementer(IRequest)
class Onboarding:
    """
    Answers requests to C{interceptor.it} itself, without contacting any
    server.
    """

    name = "onboarding"

    def __init__(self) -> None:
        self.master: Optional[Master] = None

    def load(self, loader: Loader) -> None:
        """
        Remember the master whose CA is served.
        """
        self.master = loader.master

    def request(self, flow: HTTPFlow) -> None:
        """
        Serve the page or a certificate file.
        """
        request = flow.request
        if request.host != MAGIC_HOST or self.master is None:
            return
        store = certstore_for(self.master)
        path = request.path.split("?", 1)[0].rstrip("/")
        if path in ("", "/"):
            from cryptography.hazmat.primitives import hashes

            items = "\n".join(
                f'<li><a href="/cert/{name}">{CA_BASENAME}-cert{suffix}</a> ({html.escape(use)})</li>'
                for name, (suffix, _, use) in _FORMATS.items()
            )
            fingerprint = store.ca_cert.fingerprint(hashes.SHA256()).hex(":").upper()
            page = _PAGE.format(items=items, fingerprint=fingerprint)
            flow.response = Response.make(
                200, page, {"Content-Type": "text/html; charset=utf-8"}
            )
            return
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/cert/") and name in _FORMATS:
            suffix, mime, _ = _FORMATS[name]
            data = store.ca_cert_bytes(suffix)
            flow.response = Response.make(
                200,
                data,
                {
                    "Content-Type": mime,
                    "Content-Disposition": f'attachment; filename="{CA_BASENAME}-cert{suffix}"',
                },
            )
            return
        flow.response = Response.make(404, "Not found.\n", {"Content-Type": "text/plain"})
