# -*- test-case-name: tests.e2e.test_tls -*-
"""
End-to-end tests of HTTPS interception (issue #4), with real clients (curl,
urllib, Python's C{ssl}) over loopback against real HTTPS servers whose
certificates come from a test CA the proxy is told to trust
(C{ssl_verify_upstream_trusted_ca}):

1. CONNECT: C{http_connect}, answering it from an addon, and what the
   tunnel carries (TLS intercepted, plain HTTP parsed, anything else relayed);
2. the CA in the confdir, a user-supplied CA, unusable CA files;
3. minted leaves: SANs, ALPN, caching, clients without SNI;
4. upstream verification and its 502s;
5. pass-through (C{ignore_hosts}, C{allow_hosts});
6. onboarding (C{http://interceptor.it/});
7. the proxy listening on TLS itself.
"""

from __future__ import annotations

import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from twisted.trial import unittest

from addons.onboarding import Onboarding
from addons.tlsconfig import TlsConfig
from interceptor.tls.certs import CertStore
from interceptor.model.http import Response
from interceptor.layers.http1 import Http1Layer
from interceptor.layers.tls import TlsLayer
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options
from interceptor.testing import start_proxy
from tests.e2e.peers import (
    RawClient,
    Recorder,
    WebServer,
    curl,
    parse_responses,
    wait_until,
)
from tests.e2e.tlspeers import (
    EchoServer,
    HttpsServer,
    TestCA,
    key_pem,
    pem_of,
    peer_chain,
    tunnel_tls,
    urllib_get,
)

CA_CERT = "interceptor-ca-cert.pem"
CLOSE = b"Connection: close\r\n"


def get(path: str = "/hello", host: str = "localhost") -> bytes:
    """
    A GET request asking the server to close afterwards.
    """
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode() + CLOSE + b"\r\n"


def responses(result) -> list:
    """
    The response heads curl saw, without the proxy's answer to CONNECT.
    """
    return [h for h in result.heads if h.reason.lower() != b"connection established"]


class Events(Recorder):
    """
    L{Recorder}, plus C{http_connect} and C{next_layer}.
    """

    EVENTS = Recorder.EVENTS + ("http_connect", "next_layer")

    def layers(self) -> list:
        """
        The layers offered to C{next_layer}, in order.
        """
        return [arg for name, arg in self.events if name == "next_layer"]

    def https_flows(self) -> list:
        """
        The flows of the recorded HTTP events (CONNECT flows excluded).
        """
        return [f for f in self.flows() if f.request.method != "CONNECT"]


class RewriteBody:
    """
    Changes every response: a header added, "world" replaced in the body;
    and marks every request.
    """

    name = "rewritebody"

    def request(self, flow):
        flow.request.headers["X-Intercepted"] = "request"

    def response(self, flow):
        flow.response.headers["X-Intercepted"] = flow.request.scheme
        if flow.response.content:
            flow.response.content = flow.response.content.replace(b"world", b"interceptor")


class RejectConnect:
    """
    Answers every CONNECT with 403.
    """

    name = "rejectconnect"

    def http_connect(self, flow):
        flow.response = Response.make(403, b"no tunnels here\n", {"Content-Type": "text/plain"})


class TlsTestCase(unittest.TestCase):
    """
    Common set-up: the test CA, a file trusting it, and a proxy factory.
    """

    timeout = 20

    def setUp(self):
        self.ca = TestCA.shared()
        self.test_ca_path = self.ca.cert_path(self)
        self.confdir = self.mktemp()

    async def proxy(self, *addons, **options):
        """
        A proxy trusting the test CA upstream, with its confdir in the test's
        temporary directory.
        """
        options.setdefault("confdir", self.confdir)
        options.setdefault("ssl_verify_upstream_trusted_ca", self.test_ca_path)
        options.setdefault("read_timeout", 3.0)
        options.setdefault("connect_timeout", 3.0)
        return await start_proxy(self, TlsConfig(), *addons, **options)

    @property
    def proxy_ca(self) -> str:
        """
        The proxy's client-facing CA certificate file.
        """
        return os.path.join(self.confdir, CA_CERT)

    def write_file(self, *parts: bytes) -> str:
        """
        A new file in the test's temporary directory holding C{parts}, one
        after the other; its absolute path.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"".join(parts))
        return path


# -- 1. CONNECT ----------------------------------------------------------------


class ConnectTests(TlsTestCase):
    """
    CONNECT fires http_connect; the tunnel goes to the layer its bytes call
    for.
    """

    async def test_http_connect_then_tls_intercepted(self):
        """CONNECT fires http_connect (and no request/response), then the tunnelled TLS is intercepted by a TlsLayer."""
        events = Events()
        proxy = await self.proxy(events)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca, server.url("/hello"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"hello world"))
        self.assertEqual(events.count("http_connect"), 1)
        connect_flow = [arg for name, arg in events.events if name == "http_connect"][0]
        self.assertEqual(connect_flow.request.method, "CONNECT")
        self.assertEqual((connect_flow.request.host, connect_flow.request.port),
                         ("localhost", server.port))
        self.assertEqual(events.flow_events(connect_flow), ["http_connect"])
        [flow] = events.flows()
        self.assertEqual(flow.request.method, "GET")
        self.assertEqual(events.count("request"), 1)
        self.assertEqual(events.count("response"), 1)
        self.assertTrue(any(isinstance(layer, TlsLayer) for layer in events.layers()))

    async def test_connect_answered_by_addon(self):
        """A non-2xx response set in http_connect is sent to the client and the connection closed; no server is contacted."""
        events = Events()
        proxy = await self.proxy(RejectConnect(), events)
        server = await HttpsServer.start(self, self.ca)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n"
                    % (server.port, server.port))
        data = await client.wait_closed(5)
        [response] = parse_responses(data, ("CONNECT",))
        self.assertEqual(response.status, 403)
        self.assertEqual(response.body, b"no tunnels here\n")
        self.assertEqual(events.count("http_connect"), 1)
        self.assertEqual(events.count("serverconnect"), 0)
        self.assertEqual(events.count("request"), 0)
        self.assertEqual(server.connections, [])

    async def test_curl_sees_rejected_connect(self):
        """curl reports the addon's CONNECT answer as a failed tunnel (no 200)."""
        proxy = await self.proxy(RejectConnect())
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca, server.url("/hello"))
        self.assertNotEqual(result.code, 0)
        self.assertIn(b"403", result.stderr)
        self.assertEqual(server.requests, [])

    async def test_plain_http_inside_tunnel(self):
        """Plain HTTP inside a CONNECT tunnel (curl --proxytunnel) is parsed: origin-form requests get flows with scheme http."""
        events = Events()
        proxy = await self.proxy(RewriteBody(), events)
        web = await WebServer.start(self)
        result = await curl(self, "--proxytunnel", "-x", proxy.url, web.url("/echo"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.heads[-1].header(b"x-intercepted"), b"http")
        self.assertIn(b'"x-intercepted"', result.body.lower())
        self.assertEqual(events.count("http_connect"), 1)
        [flow] = events.https_flows()
        self.assertEqual(
            (flow.request.scheme, flow.request.host, flow.request.port, flow.request.path),
            ("http", "127.0.0.1", web.port, "/echo"),
        )
        self.assertEqual(flow.response.status_code, 200)
        self.assertTrue(any(isinstance(layer, Http1Layer) and layer.target is not None
                            for layer in events.layers()))

    async def test_raw_tcp_relayed(self):
        """Bytes in a tunnel that are neither TLS nor HTTP are relayed untouched to the server and back."""
        events = Events()
        proxy = await self.proxy(events)
        echo = await EchoServer.start(self)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                    % (echo.port, echo.port))
        await client.wait_for(lambda d: b"\r\n\r\n" in d, 5)
        self.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 200"))
        client.received.clear()
        payload = b"\x00\x01 hello, raw bytes \xff\r\n"
        client.send(payload)
        await client.wait_for(lambda d: len(d) >= len(payload), 5)
        self.assertEqual(bytes(client.received), payload)
        client.send(b"more")
        await client.wait_for(lambda d: d.endswith(b"more"), 5)
        self.assertEqual(echo.received, payload + b"more")
        # The raw relay layer (RelayLayer, or TcpLayer since tcp_hosts exists).
        self.assertTrue(any(type(layer).__name__ in ("RelayLayer", "TcpLayer")
                            for layer in events.layers()))
        self.assertEqual(events.count("request"), 0)

    async def test_relayed_server_close_closes_client(self):
        """When the relayed server closes, the client connection is closed too."""
        proxy = await self.proxy()
        echo = await EchoServer.start(self)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nabc" % echo.port)
        await client.wait_for(lambda d: d.endswith(b"abc"), 5)
        self.assertTrue(await wait_until(lambda: len(echo.connections) == 1))
        echo.connections[0].transport.loseConnection()
        data = await client.wait_closed(5)
        self.assertTrue(data.endswith(b"abc"))


# -- the "done when" of issue #4 -----------------------------------------------


class InterceptionTests(TlsTestCase):
    """
    HTTPS requests through the proxy get flows with scheme https, and
    addons change them.
    """

    async def test_curl_https_modified(self):
        """curl trusting only the proxy's CA gets the addon's changes; request/response fire with scheme https."""
        events = Events()
        proxy = await self.proxy(RewriteBody(), events)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca, server.url("/hello"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, b"hello interceptor")
        self.assertEqual(result.heads[-1].header(b"x-intercepted"), b"https")
        self.assertEqual(result.heads[-1].header(b"x-upstream"), b"yes")
        [flow] = events.https_flows()
        self.assertEqual(events.flow_events(flow),
                         ["requestheaders", "request", "responseheaders", "response"])
        self.assertEqual(
            (flow.request.scheme, flow.request.host, flow.request.port, flow.request.path),
            ("https", "localhost", server.port, "/hello"),
        )
        self.assertEqual(flow.request.url, server.url("/hello"))
        self.assertTrue(flow.server_conn.tls_established)
        self.assertEqual(flow.server_conn.sni, "localhost")
        self.assertTrue(flow.client_conn.tls_established)
        self.assertEqual(flow.client_conn.sni, "localhost")
        [request] = server.requests
        self.assertEqual(request.getHeader(b"x-intercepted"), b"request")

    async def test_urllib_https_modified(self):
        """urllib trusting only the proxy's CA sees the addon's changes; the server saw the changed request."""
        events = Events()
        proxy = await self.proxy(RewriteBody(), events)
        server = await HttpsServer.start(self, self.ca)
        status, headers, body = await urllib_get(server.url("/hello"), proxy.url, self.proxy_ca)
        self.assertEqual((status, body), (200, b"hello interceptor"))
        self.assertEqual(headers.get("X-Intercepted"), "https")
        status, headers, body = await urllib_get(server.url("/echo"), proxy.url, self.proxy_ca,
                                                 {"X-Client": "urllib"})
        self.assertEqual(status, 200)
        self.assertIn(b'"x-intercepted": ["request"]', body)
        self.assertIn(b'"x-client": ["urllib"]', body)
        flows = events.https_flows()
        self.assertEqual([f.request.scheme for f in flows], ["https", "https"])
        self.assertEqual([f.response.status_code for f in flows], [200, 200])

    async def test_keep_alive_inside_tunnel(self):
        """Two requests through one intercepted tunnel are two flows over one upstream TLS connection."""
        events = Events()
        proxy = await self.proxy(events)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca,
                            server.url("/hello"), server.url("/echo"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual([h.status for h in responses(result)], [200, 200])
        self.assertEqual(events.count("http_connect"), 1)
        self.assertEqual([f.request.path for f in events.https_flows()], ["/hello", "/echo"])
        self.assertEqual(events.count("serverconnect"), 1)
        self.assertEqual(len(server.connections), 1)

    async def test_post_body_https(self):
        """A POST body goes through an intercepted tunnel intact."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca,
                            "--data-binary", "payload=1&b=2", server.url("/echo"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertIn(b'"body": "payload=1&b=2"', result.body)
        self.assertIn(b'"method": "POST"', result.body)


# -- 2. the CA -------------------------------------------------------------------


class CATests(TlsTestCase):
    """
    The proxy's CA: made on first start, kept afterwards, or the user's.
    """

    async def test_ca_files_created_on_start(self):
        """The first start writes the CA key+cert (mode 0600) and the cert as .pem, .cer and .p12."""
        self.assertFalse(os.path.exists(self.confdir))
        await self.proxy()
        secret = os.path.join(self.confdir, "interceptor-ca.pem")
        self.assertEqual(stat.S_IMODE(os.stat(secret).st_mode), 0o600)
        with open(secret, "rb") as f:
            data = f.read()
        key = serialization.load_pem_private_key(data, None)
        cert = x509.load_pem_x509_certificate(data)
        der = serialization.Encoding.DER
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        self.assertEqual(key.public_key().public_bytes(der, spki),
                         cert.public_key().public_bytes(der, spki))
        self.assertTrue(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        for suffix in (".pem", ".cer"):
            with open(os.path.join(self.confdir, "interceptor-ca-cert" + suffix), "rb") as f:
                content = f.read()
            self.assertEqual(x509.load_pem_x509_certificate(content), cert)
            self.assertNotIn(b"PRIVATE KEY", content)
        with open(os.path.join(self.confdir, "interceptor-ca-cert.p12"), "rb") as f:
            p12 = pkcs12.load_pkcs12(f.read(), None)
        self.assertIsNone(p12.key)
        certs = ([p12.cert.certificate] if p12.cert else []) + [
            c.certificate for c in p12.additional_certs]
        self.assertEqual(certs, [cert])

    async def test_ca_created_on_first_interception(self):
        """Without the TlsConfig addon the CA is created at the first interception, and clients can trust it afterwards."""
        events = Events()
        proxy = await start_proxy(self, events, confdir=self.confdir, read_timeout=3.0,
                                  ssl_verify_upstream_trusted_ca=self.test_ca_path)
        server = await HttpsServer.start(self, self.ca)
        self.assertFalse(os.path.exists(self.proxy_ca))
        result = await curl(self, "-x", proxy.url, "-k", server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertTrue(os.path.exists(self.proxy_ca))
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca, server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)

    async def test_second_start_keeps_ca(self):
        """A second proxy on the same confdir loads the CA as it is; clients trusting it keep working."""
        first = await self.proxy()
        files = {}
        for name in os.listdir(self.confdir):
            with open(os.path.join(self.confdir, name), "rb") as f:
                files[name] = f.read()
        self.assertEqual(
            sorted(files),
            sorted(["interceptor-ca.pem", "interceptor-ca-cert.pem",
                    "interceptor-ca-cert.cer", "interceptor-ca-cert.p12"]),
        )
        await first.stop()
        trusted = self.write_file(files[CA_CERT])
        second = await self.proxy()
        for name, content in files.items():
            with open(os.path.join(self.confdir, name), "rb") as f:
                self.assertEqual(f.read(), content, name)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", second.url, "--cacert", trusted, server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)

    async def test_user_ca_file(self):
        """With ca_file, leaves are signed by the user's CA: clients trusting only it succeed."""
        cert, key = CertStore.create_ca("my own CA")
        directory = self.mktemp()
        os.makedirs(directory)
        ca_file = os.path.join(directory, "my-ca.pem")
        with open(ca_file, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
            f.write(pem_of(cert))
        my_cert = os.path.join(directory, "my-ca-cert.pem")
        with open(my_cert, "wb") as f:
            f.write(pem_of(cert))
        proxy = await self.proxy(ca_file=ca_file)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", my_cert, server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=my_cert,
                                server_hostname="localhost")
        self.assertIsNone(seen.error)
        leaf = x509.load_der_x509_certificate(seen.peer_der)
        self.assertEqual(leaf.issuer, cert.subject)

    async def test_root_ca_not_sent(self):
        """The proxy's own (root) CA is not sent after the leaf: clients that trust it have it; they still verify leaf and CA."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca)
        presented, verified = await peer_chain(proxy.port_number, "localhost", server.port,
                                               self.proxy_ca, "localhost")
        ca = x509.load_pem_x509_certificate(open(self.proxy_ca, "rb").read())
        self.assertEqual(presented, ["CN=localhost"])
        self.assertEqual(verified, ["CN=localhost", ca.subject.rfc4514_string()])

    async def test_intermediate_ca_file(self):
        """A user CA that is an intermediate is sent after the leaf, so clients trusting only the root verify."""
        root_ca = TestCA("my intermediate root")
        root = root_ca.cert
        cert, key = root_ca.intermediate("my intermediate")
        proxy = await self.proxy(ca_file=self.write_file(key_pem(key), pem_of(cert)))
        server = await HttpsServer.start(self, self.ca)
        root_only = self.write_file(pem_of(root))
        presented, verified = await peer_chain(proxy.port_number, "localhost", server.port,
                                               root_only, "localhost")
        self.assertEqual(presented, ["CN=localhost", "CN=my intermediate"])
        self.assertEqual(verified, ["CN=localhost", "CN=my intermediate", root.subject.rfc4514_string()])
        result = await curl(self, "-x", proxy.url, "--cacert", root_only, server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)

    async def test_ca_file_changed_at_runtime(self):
        """Setting ca_file on a running proxy makes new connections get leaves from the new CA."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca)
        before = await tunnel_tls(proxy.port_number, "localhost", server.port,
                                  cafile=self.proxy_ca, server_hostname="localhost")
        self.assertIsNone(before.error)
        cert, key = CertStore.create_ca("switched CA")
        ca_file = self.write_file(key_pem(key), pem_of(cert))
        cert_only = self.write_file(pem_of(cert))
        proxy.master.options.update(ca_file=ca_file)
        after = await tunnel_tls(proxy.port_number, "localhost", server.port,
                                 cafile=cert_only, server_hostname="localhost")
        self.assertIsNone(after.error)
        self.assertEqual(x509.load_der_x509_certificate(after.peer_der).issuer, cert.subject)

    def _master(self, **options):
        master = Master(proxy_options(confdir=self.confdir, **options), addons=[TlsConfig()])
        self.addCleanup(master.stop)
        return master

    def test_unreadable_ca_file(self):
        """A ca_file that cannot be read is an OptionsError naming the file."""
        missing = os.path.abspath(os.path.join(self.mktemp(), "nope.pem"))
        master = self._master(ca_file=missing)
        error = self.assertRaises(OptionsError, master.start)
        self.assertIn(missing, str(error))

    def test_ca_file_without_key(self):
        """A ca_file holding only a certificate is an OptionsError naming the file."""
        path = self.write_file(pem_of(self.ca.cert))
        master = self._master(ca_file=path)
        error = self.assertRaises(OptionsError, master.start)
        self.assertIn(path, str(error))

    def test_mismatched_ca_file(self):
        """A ca_file whose key does not match its certificate is an OptionsError naming the file."""
        cert, _ = CertStore.create_ca("one")
        _, other_key = CertStore.create_ca("two")
        path = self.write_file(key_pem(other_key), pem_of(cert))
        master = self._master(ca_file=path)
        error = self.assertRaises(OptionsError, master.start)
        self.assertIn(path, str(error))
        self.assertIn("does not match", str(error))

    async def test_bad_ca_file_at_runtime_rejected(self):
        """Setting an unusable ca_file on a running proxy is refused; the option and the CA stay as they were."""
        proxy = await self.proxy()
        missing = os.path.abspath(os.path.join(self.mktemp(), "nope.pem"))
        error = self.assertRaises(OptionsError, proxy.master.options.update, ca_file=missing)
        self.assertIn(missing, str(error))
        self.assertIsNone(proxy.master.options.ca_file)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca, server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)


# -- 3. minted leaves ------------------------------------------------------------


class LeafTests(TlsTestCase):
    """
    What the certificate minted for the client covers, and the ALPN it
    gets.
    """

    async def test_leaf_covers_sni_and_upstream_names(self):
        """The leaf covers the SNI and, with upstream_cert (default), the names of the upstream's certificate."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca,
                                         names=["localhost", "alt.test", "127.0.0.1"])
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=self.proxy_ca,
                                server_hostname="localhost", request=get())
        self.assertIsNone(seen.error)
        self.assertEqual(set(seen.san),
                         {("DNS", "localhost"), ("DNS", "alt.test"), ("IP Address", "127.0.0.1")})
        self.assertNotEqual(seen.peer_der, server.der)
        self.assertIn(b"hello world", seen.response)

    async def test_leaf_without_upstream_cert(self):
        """With upstream_cert off, the leaf covers only the SNI."""
        proxy = await self.proxy(upstream_cert=False)
        server = await HttpsServer.start(self, self.ca, names=["localhost", "alt.test"])
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=self.proxy_ca,
                                server_hostname="localhost")
        self.assertIsNone(seen.error)
        self.assertEqual(seen.san, [("DNS", "localhost")])

    async def test_sni_differs_from_connect_host(self):
        """CONNECT to an IP address with an SNI: the upstream is checked and the leaf minted for the SNI."""
        events = Events()
        proxy = await self.proxy(events, upstream_cert=False)
        server = await HttpsServer.start(self, self.ca, names=["localhost"])
        seen = await tunnel_tls(proxy.port_number, "127.0.0.1", server.port, cafile=self.proxy_ca,
                                server_hostname="localhost", request=get())
        self.assertIsNone(seen.error)
        self.assertEqual(seen.san, [("DNS", "localhost")])
        self.assertIn(b"200 OK", seen.response)
        [flow] = events.https_flows()
        self.assertEqual(flow.server_conn.sni, "localhost")

    async def test_ip_address_without_sni(self):
        """A client without SNI (an IP-address URL) gets a leaf for the IP address and its answer."""
        events = Events()
        proxy = await self.proxy(events, upstream_cert=False)
        server = await HttpsServer.start(self, self.ca)
        seen = await tunnel_tls(proxy.port_number, "127.0.0.1", server.port, cafile=self.proxy_ca,
                                server_hostname="127.0.0.1", request=get(host="127.0.0.1"))
        self.assertIsNone(seen.error)
        self.assertEqual(seen.san, [("IP Address", "127.0.0.1")])
        self.assertIn(b"hello world", seen.response)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca,
                            server.url("/hello", host="127.0.0.1"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        flows = events.https_flows()
        self.assertEqual(len(flows), 2)
        self.assertEqual({f.client_conn.sni for f in flows}, {None})
        self.assertEqual({f.request.host for f in flows}, {"127.0.0.1"})

    async def test_leaves_cached(self):
        """Two connections to the same host get the very same minted certificate."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca)
        first = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=self.proxy_ca,
                                 server_hostname="localhost")
        second = await tunnel_tls(proxy.port_number, "localhost", server.port,
                                  cafile=self.proxy_ca, server_hostname="localhost")
        self.assertIsNone(first.error)
        self.assertEqual(first.peer_der, second.peer_der)

    async def test_alpn_http1_from_upstream(self):
        """An upstream choosing http/1.1 makes the client get http/1.1 even though it offered h2."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca, alpn=[b"http/1.1"])
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=self.proxy_ca,
                                server_hostname="localhost", alpn=["h2", "http/1.1"],
                                request=get())
        self.assertIsNone(seen.error)
        self.assertEqual(seen.alpn, "http/1.1")
        self.assertIn(b"hello world", seen.response)

    async def test_alpn_h2_from_upstream(self):
        """An upstream choosing h2 makes the client get h2; curl --http2 then gets its answer over HTTP/2."""
        events = Events()
        proxy = await self.proxy(RewriteBody(), events)
        server = await HttpsServer.start(self, self.ca, alpn=[b"h2", b"http/1.1"])
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=self.proxy_ca,
                                server_hostname="localhost", alpn=["h2", "http/1.1"])
        self.assertIsNone(seen.error)
        self.assertEqual(seen.alpn, "h2")
        result = await curl(self, "--http2", "-x", proxy.url, "--cacert", self.proxy_ca,
                            server.url("/hello"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.info.get("http_version"), "2")
        self.assertEqual((result.status, result.body), (200, b"hello interceptor"))
        [flow] = [f for f in events.https_flows() if f.response is not None]
        self.assertEqual(flow.request.scheme, "https")

    async def test_alpn_upstream_without_alpn(self):
        """An upstream answering no ALPN makes the client speak HTTP/1.1 (never h2)."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca, alpn=None)
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=self.proxy_ca,
                                server_hostname="localhost", alpn=["h2", "http/1.1"],
                                request=get())
        self.assertIsNone(seen.error)
        self.assertIn(seen.alpn, (None, "http/1.1"))
        self.assertIn(b"hello world", seen.response)

    async def test_alpn_http2_option_off(self):
        """With http2 off, h2 is not offered upstream, and the client gets http/1.1."""
        proxy = await self.proxy(http2=False)
        server = await HttpsServer.start(self, self.ca, alpn=[b"h2", b"http/1.1"])
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port, cafile=self.proxy_ca,
                                server_hostname="localhost", alpn=["h2", "http/1.1"],
                                request=get())
        self.assertIsNone(seen.error)
        self.assertEqual(seen.alpn, "http/1.1")
        self.assertIn(b"hello world", seen.response)


# -- 4. upstream verification ----------------------------------------------------


class VerificationTests(TlsTestCase):
    """
    Upstream certificates are verified by default; a failure is a 502
    naming the reason, and an error event.
    """

    async def assert_fails(self, server, reason, url=None, **options):
        events = Events()
        proxy = await self.proxy(events, **options)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca,
                            url or server.url("/hello"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 502)
        self.assertIn(reason, result.body.decode("utf-8", "replace"))
        self.assertTrue(await wait_until(lambda: events.count("error") == 1))
        [flow] = events.https_flows()
        self.assertIn(reason, flow.error.msg)
        self.assertEqual(flow.request.scheme, "https")
        self.assertEqual(server.requests, [])
        return flow

    async def test_expired(self):
        """An expired upstream certificate: 502 naming "expired", and error fires."""
        server = await HttpsServer.start(self, self.ca, expired=True)
        await self.assert_fails(server, "expired")

    async def test_wrong_host(self):
        """A certificate for another host: 502 naming "wrong host" and the name."""
        server = await HttpsServer.start(self, self.ca, names=["wrong.test"])
        flow = await self.assert_fails(server, "wrong host")
        self.assertIn("localhost", flow.error.msg)

    async def test_wrong_ip_address(self):
        """A certificate without the IP address asked for: 502 naming the IP address."""
        server = await HttpsServer.start(self, self.ca, names=["localhost"])
        flow = await self.assert_fails(server, "127.0.0.1", url=server.url("/hello", "127.0.0.1"))
        self.assertIn("IP address", flow.error.msg)

    async def test_unknown_issuer(self):
        """A certificate from a CA the proxy does not trust: 502 naming "unknown issuer"."""
        server = await HttpsServer.start(self, self.ca)
        await self.assert_fails(server, "unknown issuer", ssl_verify_upstream_trusted_ca=None)

    async def test_failure_over_urllib(self):
        """urllib gets the 502 too, over the intercepted TLS connection."""
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca, expired=True)
        status, _, body = await urllib_get(server.url("/hello"), proxy.url, self.proxy_ca)
        self.assertEqual(status, 502)
        self.assertIn(b"expired", body)

    async def test_ssl_insecure(self):
        """With ssl_insecure, expired and wrong-host upstreams are accepted."""
        events = Events()
        proxy = await self.proxy(events, ssl_insecure=True, ssl_verify_upstream_trusted_ca=None)
        expired = await HttpsServer.start(self, self.ca, expired=True)
        wrong = await HttpsServer.start(self, self.ca, names=["wrong.test"])
        for server in (expired, wrong):
            result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca,
                                server.url("/hello"))
            self.assertEqual(result.code, 0, result.stderr)
            self.assertEqual((result.status, result.body), (200, b"hello world"))
        self.assertEqual(events.count("error"), 0)

    async def test_trusted_ca_bundle(self):
        """ssl_verify_upstream_trusted_ca takes a bundle of several CA certificates."""
        other, _ = CertStore.create_ca("unrelated")
        bundle = self.write_file(pem_of(other), pem_of(self.ca.cert))
        proxy = await self.proxy(ssl_verify_upstream_trusted_ca=bundle)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca, server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)

    async def test_upstream_unreachable(self):
        """An upstream that refuses the connection: the client's handshake completes and it gets a 502."""
        from tests.e2e.peers import unused_port

        events = Events()
        proxy = await self.proxy(events)
        port = await unused_port()
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca,
                            f"https://localhost:{port}/")
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 502)
        self.assertTrue(await wait_until(lambda: events.count("error") == 1))


# -- 5. pass-through -------------------------------------------------------------


class PassthroughTests(TlsTestCase):
    """
    Matching TLS connections are relayed untouched: the client sees the
    upstream's own certificate.
    """

    async def assert_passthrough(self, proxy, events, server, host="localhost"):
        seen = await tunnel_tls(proxy.port_number, host, server.port, cafile=self.test_ca_path,
                                server_hostname="localhost", request=get())
        self.assertIsNone(seen.error)
        self.assertEqual(seen.peer_der, server.der)
        self.assertIn(b"hello world", seen.response)
        self.assertEqual(events.count("request"), 0)
        self.assertEqual(len(server.requests), 1)

    async def assert_intercepted(self, proxy, server):
        seen = await tunnel_tls(proxy.port_number, "localhost", server.port,
                                cafile=self.proxy_ca, server_hostname="localhost")
        self.assertIsNone(seen.error)
        self.assertNotEqual(seen.peer_der, server.der)

    async def test_ignore_hosts(self):
        """A host:port matching ignore_hosts is passed through: the upstream's own certificate, no flows."""
        events = Events()
        server = await HttpsServer.start(self, self.ca)
        proxy = await self.proxy(events, ignore_hosts=[rf"^localhost:{server.port}$"])
        await self.assert_passthrough(proxy, events, server)

    async def test_ignore_hosts_matches_sni(self):
        """ignore_hosts also matches the SNI when the CONNECT names an IP address."""
        events = Events()
        server = await HttpsServer.start(self, self.ca)
        proxy = await self.proxy(events, ignore_hosts=[r"^localhost:"])
        await self.assert_passthrough(proxy, events, server, host="127.0.0.1")

    async def test_ignore_hosts_not_matching(self):
        """A host not matching ignore_hosts is intercepted."""
        server = await HttpsServer.start(self, self.ca)
        proxy = await self.proxy(ignore_hosts=[r"^example\.org:"])
        await self.assert_intercepted(proxy, server)

    async def test_allow_hosts_not_matching(self):
        """A host not matching a non-empty allow_hosts is passed through."""
        events = Events()
        server = await HttpsServer.start(self, self.ca)
        proxy = await self.proxy(events, allow_hosts=[r"^example\.org:"])
        await self.assert_passthrough(proxy, events, server)

    async def test_allow_hosts_matching(self):
        """A host matching allow_hosts is intercepted."""
        server = await HttpsServer.start(self, self.ca)
        proxy = await self.proxy(allow_hosts=[rf"localhost:{server.port}"])
        await self.assert_intercepted(proxy, server)

    async def test_passthrough_with_curl(self):
        """curl trusting only the test CA talks to the real server through a passed-through tunnel."""
        events = Events()
        server = await HttpsServer.start(self, self.ca)
        proxy = await self.proxy(events, ignore_hosts=[r"localhost"])
        result = await curl(self, "-x", proxy.url, "--cacert", self.test_ca_path,
                            server.url("/hello"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"hello world"))
        self.assertEqual(events.count("http_connect"), 1)
        self.assertEqual(events.count("request"), 0)


# -- 6. onboarding ---------------------------------------------------------------


class OnboardingTests(TlsTestCase):
    """
    http://interceptor.it/ serves the CA certificate.
    """

    async def test_page(self):
        """The page links the certificate in each format, with its fingerprint, without contacting any server."""
        events = Events()
        proxy = await self.proxy(Onboarding(), events)
        result = await curl(self, "-x", proxy.url, "http://interceptor.it/")
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertIn(b"text/html", result.heads[-1].header(b"content-type"))
        for name in (b"/cert/pem", b"/cert/cer", b"/cert/p12"):
            self.assertIn(name, result.body)
        with open(self.proxy_ca, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
        self.assertIn(fingerprint.encode(), result.body)
        self.assertEqual(events.count("serverconnect"), 0)

    async def test_cert_files(self):
        """/cert/pem, /cert/cer and /cert/p12 return the confdir files byte for byte."""
        proxy = await self.proxy(Onboarding())
        for name in ("pem", "cer", "p12"):
            result = await curl(self, "-x", proxy.url, f"http://interceptor.it/cert/{name}")
            self.assertEqual((result.code, result.status), (0, 200), result.stderr)
            with open(os.path.join(self.confdir, "interceptor-ca-cert." + name), "rb") as f:
                self.assertEqual(result.body, f.read(), name)
            self.assertIn(b"attachment", result.heads[-1].header(b"content-disposition"))
        result = await curl(self, "-x", proxy.url, "http://interceptor.it/cert/nope")
        self.assertEqual(result.status, 404)

    async def test_served_pem_is_trusted_by_clients(self):
        """The PEM from /cert/pem is the CA that signs the intercepted connections."""
        proxy = await self.proxy(Onboarding())
        result = await curl(self, "-x", proxy.url, "http://interceptor.it/cert/pem")
        path = self.write_file(result.body)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", path, server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)

    async def test_served_pem_with_user_ca_file(self):
        """With ca_file, /cert/pem serves the user's CA certificate (the one signing the leaves)."""
        cert, key = CertStore.create_ca("my own CA")
        ca_file = self.write_file(key_pem(key), pem_of(cert))
        proxy = await self.proxy(Onboarding(), ca_file=ca_file)
        result = await curl(self, "-x", proxy.url, "http://interceptor.it/cert/pem")
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertEqual(x509.load_pem_x509_certificate(result.body), cert)


# -- 7. the proxy on TLS ---------------------------------------------------------


class TlsListenTests(TlsTestCase):
    """
    The proxy listens on TLS itself (an HTTPS proxy).
    """

    async def tls_proxy(self, *addons):
        key, cert = self.ca.key_and_cert_files(self, ["localhost", "127.0.0.1"])
        return await self.proxy(
            *addons, listen=f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        )

    async def test_http_over_tls_proxy(self):
        """curl --proxy https://... sends plain HTTP requests over TLS to the proxy."""
        events = Events()
        proxy = await self.tls_proxy(events)
        web = await WebServer.start(self)
        result = await curl(self, "--proxy", f"https://127.0.0.1:{proxy.port_number}",
                            "--proxy-cacert", self.test_ca_path, web.url("/echo"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        [flow] = events.https_flows()
        self.assertEqual((flow.request.scheme, flow.request.path), ("http", "/echo"))

    async def test_tls_listener_with_alpn_client(self):
        """A client offering ALPN to the TLS listener completes its handshake and is served (Python ssl, h2 and http/1.1 offered)."""
        import ssl

        from tests.e2e.tlspeers import in_thread

        proxy = await self.tls_proxy(Onboarding())
        ca_path = self.test_ca_path

        def fetch():
            context = ssl.create_default_context(cafile=ca_path)
            context.set_alpn_protocols(["h2", "http/1.1"])
            import socket

            with socket.create_connection(("127.0.0.1", proxy.port_number), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"GET http://interceptor.it/cert/pem HTTP/1.1\r\n"
                                b"Host: interceptor.it\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := tls.recv(65536):
                        data += chunk
                    return tls.selected_alpn_protocol(), data

        alpn, data = await in_thread(fetch)
        self.assertIn(alpn, (None, "http/1.1"))
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])

    async def test_https_over_tls_proxy(self):
        """HTTPS through an HTTPS proxy: CONNECT over TLS, then the inner TLS intercepted."""
        events = Events()
        proxy = await self.tls_proxy(RewriteBody(), events)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "--proxy", f"https://127.0.0.1:{proxy.port_number}",
                            "--proxy-cacert", self.test_ca_path, "--cacert", self.proxy_ca,
                            server.url("/hello"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"hello interceptor"))
        [flow] = events.https_flows()
        self.assertEqual(flow.request.scheme, "https")
