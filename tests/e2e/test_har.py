# -*- test-case-name: tests.e2e.test_har -*-
"""
End-to-end tests of HAR export: real traffic through the proxy (curl over
HTTP/1.1 and over HTTP/2 with TLS interception, to loopback servers),
recorded by C{examples/har_summary.py}, checked against the HAR 1.2 schema,
read back, and given to a real HAR consumer: the npm package
C{har-validator} run by node (what request, the HTTP Toolkit and many
others validate HARs with).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any, Optional

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from addons.script import ScriptLoader
from interceptor.io.har import HarWriter, read_har
from interceptor.testing import start_proxy
from tests.e2e.h2peers import H2Server, TestPKI, proxy_ca_path
from tests.e2e.peers import WebServer, curl, unused_port
from tests.test_har import schema_errors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
EXAMPLE = os.path.join(ROOT, "examples", "har_summary.py")

# Validates a HAR file with har-validator's promise API; prints the errors it finds.
_VALIDATE_JS = """
const validate = require("har-validator");
const har = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
validate.har(har).then(
  () => { console.log("valid"); },
  (e) => { console.log(JSON.stringify(e.errors || e.message)); process.exit(3); });
"""


def _har_validator_path() -> tuple[Optional[str], Optional[str]]:
    """
    (NODE_PATH holding har-validator, None), or (None, why it cannot run).
    Install it with C{npm install -g har-validator}.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "node and npm are not installed"
    try:
        root = subprocess.run(
            ["npm", "root", "-g"], capture_output=True, timeout=20, text=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"npm root -g failed: {e}"
    if not os.path.isfile(os.path.join(root, "har-validator", "package.json")):
        return None, f"har-validator is not installed in {root} (npm install -g har-validator)"
    return root, None


HAR_VALIDATOR_PATH, HAR_VALIDATOR_SKIP = _har_validator_path()
CURL_SKIP = None if shutil.which("curl") else "curl is not installed"


async def har_validator(path: str) -> tuple[int, str]:
    """
    Run har-validator on the file C{path}: (exit code, what it printed).
    """
    assert HAR_VALIDATOR_PATH is not None
    out, err, code = await getProcessOutputAndValue(
        "node",
        ["-e", _VALIDATE_JS, path],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_PATH": HAR_VALIDATOR_PATH},
    )
    return code, (out + err).decode("utf-8", "replace")


class _Recording(unittest.TestCase):
    """
    Records traffic through a proxy with the example addon.
    """

    timeout = 30

    async def record(self, *requests: list[str], **options: Any) -> tuple[str, list[Any]]:
        """
        Start a proxy with the example recording to a file, run each curl
        argument list through it, stop it; the HAR path and curl results.
        """
        path = os.path.abspath(self.mktemp() + ".har")
        proxy = await start_proxy(
            self, ScriptLoader(), scripts=[os.path.abspath(EXAMPLE)],
            confdir=self.mktemp(), read_timeout=5.0, **options,
        )
        # (The option exists once the script has loaded.)
        proxy.master.options.update(hardump=path)
        self.proxy_ca = proxy_ca_path(proxy)
        results = []
        for args in requests:
            args = [a.replace("{ca}", self.proxy_ca) for a in args]
            results.append(await curl(self, "-x", proxy.url, *args))
        await proxy.stop()
        return path, results

    def load(self, path: str) -> dict[str, Any]:
        with open(path, "rb") as f:
            document: dict[str, Any] = json.load(f)
        self.assertEqual(schema_errors(document), [])
        return document

    async def record_http1(self) -> tuple[WebServer, str, list[Any]]:
        """
        Over HTTP/1.1: a GET of 3000 bytes, a form POST with a cookie, and a
        GET to a closed port; the server, the HAR path and curl's results.
        """
        server = await WebServer.start(self)
        closed = await unused_port()
        path, results = await self.record(
            [server.url("/bytes?n=3000")],
            ["-d", "a=1&b=two", "-b", "sid=xyz", server.url("/echo")],
            [f"http://127.0.0.1:{closed}/nobody"],
        )
        return server, path, results

    async def record_http2(self) -> tuple[str, int]:
        """
        Two requests with curl --http2 through TLS interception to an h2
        server (one binary answer, one text): the HAR path and the server port.
        """
        pki = TestPKI(self.mktemp())

        def handler(stream: Any) -> None:
            binary = stream.path == b"/bin"
            body = bytes(range(256)) if binary else b"text " + stream.path
            kind = b"application/octet-stream" if binary else b"text/plain"
            stream.respond(200, [(b"content-type", kind)], body)

        server = await H2Server.start(self, pki, handler)
        url = f"https://127.0.0.1:{server.port}"
        path, results = await self.record(
            ["--http2", "--cacert", "{ca}", url + "/bin"],
            ["--http2", "--cacert", "{ca}", url + "/t?x=1"],
            ssl_verify_upstream_trusted_ca=pki.ca_path,
        )
        self.assertEqual([r.code for r in results], [0, 0], [r.stderr for r in results])
        return path, server.port


class RecordedHarTests(_Recording):
    """
    Traffic through the proxy, recorded by the example addon, is valid HAR
    and reads back.
    """

    skip = CURL_SKIP

    async def test_http1(self) -> None:
        """
        GET, a form POST and a refused connection: three valid entries,
        with what was sent and received, read back as the same flows.
        """
        server, path, results = await self.record_http1()
        got, posted, refused = results
        self.assertEqual((got.status, posted.status), (200, 200))
        document = self.load(path)
        first, second, third = document["log"]["entries"]
        self.assertEqual(first["request"]["url"], server.url("/bytes?n=3000"))
        self.assertEqual(first["request"]["queryString"], [{"name": "n", "value": "3000"}])
        self.assertEqual(first["response"]["content"]["size"], 3000)
        self.assertEqual(first["serverIPAddress"], "127.0.0.1")
        # This flow opened its server connection, so connect is known (not -1);
        # the proxy stamps the connection's start when it is set up, so it is 0.
        self.assertGreaterEqual(first["timings"]["connect"], 0)
        self.assertEqual(second["request"]["postData"]["params"],
                         [{"name": "a", "value": "1"}, {"name": "b", "value": "two"}])
        self.assertEqual(second["request"]["cookies"], [{"name": "sid", "value": "xyz"}])
        self.assertEqual(third["response"]["status"], 0)
        self.assertTrue(third["response"]["_error"])
        with open(path, "rb") as f:
            flows = list(read_har(f))
        self.assertEqual([f.request.method for f in flows], ["GET", "POST", "GET"])
        assert flows[0].response is not None and flows[1].response is not None
        self.assertEqual(flows[0].response.content, got.body)
        self.assertEqual(flows[1].response.content, posted.body)
        self.assertEqual(flows[1].request.content, b"a=1&b=two")
        self.assertIsNone(flows[2].response)
        assert flows[2].error is not None
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [EXAMPLE, path], env={"PYTHONPATH": ROOT}
        )
        self.assertEqual(code, 0, err)
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].startswith("GET 200 3000B "), lines[0])
        self.assertTrue(lines[2].startswith("GET --- 0B "), lines[2])
        self.assertTrue(lines[2].endswith("/nobody"), lines[2])

    async def test_summary_of_bad_file(self) -> None:
        """The example's summary of a file that is no HAR is one clear line, exit status 1."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('{"log": {"entries": [{"request": {}}]}}')
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [EXAMPLE, path], env={"PYTHONPATH": ROOT}
        )
        self.assertEqual(code, 1)
        self.assertIn(f"{path}: entry 0.startedDateTime: missing", err.decode())
        self.assertNotIn("Traceback", err.decode())

    async def test_http2(self) -> None:
        """
        curl --http2 through TLS interception to an h2 server: HTTP/2.0
        entries, header sizes unknown, bodies in base64 when binary.
        """
        path, port = await self.record_http2()
        document = self.load(path)
        binary, text = document["log"]["entries"]
        self.assertEqual(binary["request"]["httpVersion"], "HTTP/2.0")
        self.assertEqual(binary["response"]["headersSize"], -1)
        self.assertEqual(binary["response"]["content"]["encoding"], "base64")
        self.assertEqual(text["response"]["content"]["text"], "text /t?x=1")
        with open(path, "rb") as f:
            flows = list(read_har(f))
        assert flows[0].response is not None
        self.assertEqual(flows[0].response.content, bytes(range(256)))
        self.assertEqual(flows[0].request.authority, f"127.0.0.1:{port}")


class HarValidatorTests(_Recording):
    """
    A HAR recorded by the proxy is accepted by har-validator, which
    refuses a broken one.
    """

    skip = CURL_SKIP or HAR_VALIDATOR_SKIP

    async def assertValid(self, path: str) -> None:
        code, output = await har_validator(path)
        self.assertEqual((code, output.strip()), (0, "valid"), path)

    async def test_http1(self) -> None:
        """Our HAR of real traffic passes; without a required field it fails."""
        _, path, _ = await self.record_http1()
        await self.assertValid(path)
        document = self.load(path)
        del document["log"]["entries"][1]["response"]["status"]
        broken = self.mktemp()
        with open(broken, "w") as f:
            json.dump(document, f)
        code, output = await har_validator(broken)
        self.assertEqual(code, 3)
        self.assertIn("status", output)

    async def test_http2(self) -> None:
        """A HAR of HTTP/2 traffic passes, and so do its flows read and written again."""
        path, _ = await self.record_http2()
        await self.assertValid(path)
        again = path + ".again"
        with open(path, "rb") as f, open(again, "wb") as out, HarWriter(out) as writer:
            for flow in read_har(f):
                writer.add(flow)
        self.assertEqual(writer.count, 2)
        await self.assertValid(again)
