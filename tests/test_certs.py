# -*- test-case-name: tests.test_certs -*-
"""
Unit tests of L{interceptor.certs}: the CA in the confdir, user CA files,
and the leaf certificates minted from it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto
from twisted.trial import unittest

from interceptor.tls import certs
from interceptor.tls.certs import CA_BASENAME, CertError, CertStore, names_of
from interceptor.tls.contexts import certstore_for

_PEM = serialization.Encoding.PEM


def _key_pem(key) -> bytes:
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def openssl_verify(ca: x509.Certificate, leaf: x509.Certificate, strict: bool = False) -> None:
    """
    Verify C{leaf} against C{ca} with OpenSSL (what curl and Python's ssl
    use); C{strict} adds X509_STRICT (Python 3.13's default contexts).

    @raise crypto.X509StoreContextError: It does not verify.
    """
    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(ca))
    if strict:
        store.set_flags(crypto.X509StoreFlags.X509_STRICT)
    crypto.X509StoreContext(store, crypto.X509.from_cryptography(leaf)).verify_certificate()


class _Store:
    """
    One in-memory store for the whole module (making a CA costs a key).
    """

    store = None

    @classmethod
    def get(cls) -> CertStore:
        if cls.store is None:
            cert, key = CertStore.create_ca("unit test CA")
            cls.store = CertStore(cert, key)
        return cls.store


class CreateCATests(unittest.TestCase):
    """
    L{CertStore.create_ca} makes a usable CA.
    """

    def test_ca_certificate(self):
        """The CA is self-signed, a CA (basicConstraints), may sign certificates, and is valid now."""
        cert, key = CertStore.create_ca("my CA")
        self.assertEqual(cert.subject, cert.issuer)
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "my CA")
        self.assertTrue(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertTrue(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(cert.not_valid_before_utc, now)
        self.assertGreater(cert.not_valid_after_utc, now + datetime.timedelta(days=365))
        cert.verify_directly_issued_by(cert)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        self.assertEqual(key.public_key().public_bytes(_PEM, spki),
                         cert.public_key().public_bytes(_PEM, spki))


class ConfdirTests(unittest.TestCase):
    """
    L{CertStore.from_confdir} creates the CA files once and loads them
    afterwards.
    """

    def test_created_files(self):
        """The first load writes the key+cert (0600) and the certificate as .pem, .cer and .p12."""
        confdir = self.mktemp()
        store = CertStore.from_confdir(confdir)
        secret = os.path.join(confdir, CA_BASENAME + ".pem")
        self.assertEqual(stat.S_IMODE(os.stat(secret).st_mode), 0o600)
        with open(secret, "rb") as f:
            data = f.read()
        self.assertIn(b"PRIVATE KEY", data)
        self.assertEqual(x509.load_pem_x509_certificate(data), store.ca_cert)
        for suffix in (".pem", ".cer"):
            path = store.ca_file(suffix)
            self.assertEqual(path, os.path.join(os.path.abspath(confdir),
                                                CA_BASENAME + "-cert" + suffix))
            with open(path, "rb") as f:
                content = f.read()
            self.assertNotIn(b"PRIVATE", content)
            self.assertEqual(x509.load_pem_x509_certificate(content), store.ca_cert)
        with open(store.ca_file(".p12"), "rb") as f:
            p12 = pkcs12.load_pkcs12(f.read(), None)
        self.assertIsNone(p12.key)
        found = ([p12.cert.certificate] if p12.cert else []) + [
            c.certificate for c in p12.additional_certs]
        self.assertEqual(found, [store.ca_cert])

    def test_loaded_as_is(self):
        """A second load returns the same CA and leaves the files untouched."""
        confdir = self.mktemp()
        first = CertStore.from_confdir(confdir)
        before = {}
        for name in os.listdir(confdir):
            with open(os.path.join(confdir, name), "rb") as f:
                before[name] = f.read()
        second = CertStore.from_confdir(confdir)
        self.assertEqual(second.ca_cert, first.ca_cert)
        for name, content in before.items():
            with open(os.path.join(confdir, name), "rb") as f:
                self.assertEqual(f.read(), content)

    def test_tilde_expanded(self):
        """A confdir starting with ~ is expanded."""
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        self.patch(os, "environ", dict(os.environ, HOME=home))
        store = CertStore.from_confdir("~/.interceptor")
        self.assertEqual(store.confdir, os.path.join(home, ".interceptor"))
        self.assertTrue(os.path.exists(os.path.join(home, ".interceptor", CA_BASENAME + ".pem")))

    def test_ca_file(self):
        """A user CA file (key and certificate, in either order) is used instead of the confdir's."""
        cert, key = CertStore.create_ca("user CA")
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(cert.public_bytes(_PEM) + _key_pem(key))
        store = CertStore.from_confdir(self.mktemp(), ca_file=path)
        self.assertEqual(store.ca_cert, cert)
        leaf = store.leaf_for(["example.org"])
        self.assertEqual(leaf.cert.issuer, cert.subject)
        openssl_verify(cert, leaf.cert)

    def test_intermediate_ca_sent(self):
        """A CA signed by another (an intermediate) is the chain sent after its leaves."""
        from tests.e2e.tlspeers import TestCA

        root_ca = TestCA("intermediate CA root")
        root = root_ca.cert
        cert, key = root_ca.intermediate("intermediate CA")
        leaf = CertStore(cert, key).leaf_for(["example.org"])
        self.assertEqual(leaf.chain, [cert])
        store = crypto.X509Store()
        store.add_cert(crypto.X509.from_cryptography(root))
        crypto.X509StoreContext(
            store, crypto.X509.from_cryptography(leaf.cert), [crypto.X509.from_cryptography(cert)]
        ).verify_certificate()

    def test_ca_file_rsa(self):
        """A user CA with an RSA key signs leaves."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(_key_pem(key) + cert.public_bytes(_PEM))
        store = CertStore.from_pem_file(path)
        openssl_verify(cert, store.leaf_for(["example.org"]).cert)

    def test_ca_file_missing(self):
        """A missing CA file is a CertError naming it."""
        path = os.path.abspath(os.path.join(self.mktemp(), "missing.pem"))
        error = self.assertRaises(CertError, CertStore.from_confdir, self.mktemp(), ca_file=path)
        self.assertIn(path, str(error))

    def test_ca_file_unreadable(self):
        """A CA file that cannot be read (a directory) is a CertError naming it."""
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        error = self.assertRaises(CertError, CertStore.from_pem_file, path)
        self.assertIn(path, str(error))

    def test_ca_file_not_pem(self):
        """A file that is not PEM is a CertError naming it."""
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"not a certificate\n")
        error = self.assertRaises(CertError, CertStore.from_pem_file, path)
        self.assertIn(path, str(error))

    def test_ca_file_without_certificate(self):
        """A file with a key but no certificate is a CertError naming it."""
        _, key = CertStore.create_ca()
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(_key_pem(key))
        error = self.assertRaises(CertError, CertStore.from_pem_file, path)
        self.assertIn(path, str(error))
        self.assertIn("certificate", str(error))

    def test_ca_file_mismatched(self):
        """A key that does not match the certificate is a CertError naming the file."""
        cert, _ = CertStore.create_ca()
        _, other = CertStore.create_ca()
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(_key_pem(other) + cert.public_bytes(_PEM))
        error = self.assertRaises(CertError, CertStore.from_pem_file, path)
        self.assertIn(path, str(error))
        self.assertIn("does not match", str(error))

    def test_broken_confdir_ca(self):
        """A damaged CA file in the confdir is a CertError, not silently replaced."""
        confdir = self.mktemp()
        CertStore.from_confdir(confdir)
        path = os.path.join(confdir, CA_BASENAME + ".pem")
        with open(path, "wb") as f:
            f.write(b"garbage")
        self.assertRaises(CertError, CertStore.from_confdir, confdir)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"garbage")


class LeafTests(unittest.TestCase):
    """
    L{CertStore.leaf_for} mints certificates clients accept.
    """

    def setUp(self):
        self.store = _Store.get()

    def test_names(self):
        """DNS names and IP addresses go into the SAN, the first name into the common name."""
        leaf = self.store.leaf_for(["example.org", "*.example.org", "127.0.0.1", "::1"])
        san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["example.org", "*.example.org"])
        self.assertEqual(san.get_values_for_type(x509.IPAddress),
                         [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")])
        cn = leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        self.assertEqual(cn, "example.org")
        self.assertEqual(names_of(leaf.cert), ["example.org", "*.example.org", "127.0.0.1", "::1"])

    def test_server_certificate(self):
        """A leaf is an end-entity server certificate signed by the CA, valid now."""
        leaf = self.store.leaf_for(["leaf.example"])
        self.assertFalse(leaf.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        usage = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, list(usage))
        self.assertEqual(leaf.cert.issuer, self.store.ca_cert.subject)
        leaf.cert.verify_directly_issued_by(self.store.ca_cert)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(leaf.cert.not_valid_before_utc, now)
        self.assertGreater(leaf.cert.not_valid_after_utc, now)
        self.assertEqual(leaf.chain, [])  # the CA is a root: not sent
        self.assertIs(leaf.key, self.store.leaf_key)
        openssl_verify(self.store.ca_cert, leaf.cert)

    def test_strict_verification(self):
        """A leaf passes OpenSSL's X509_STRICT checks (Python 3.13's default), so it carries an authorityKeyIdentifier."""
        leaf = self.store.leaf_for(["strict.example"])
        openssl_verify(self.store.ca_cert, leaf.cert, strict=True)

    def test_cryptography_verifier(self):
        """A leaf passes cryptography's (web PKI) path validation for its name."""
        from cryptography.x509.verification import PolicyBuilder, Store

        leaf = self.store.leaf_for(["webpki.example"])
        verifier = (PolicyBuilder().store(Store([self.store.ca_cert]))
                    .build_server_verifier(x509.DNSName("webpki.example")))
        verifier.verify(leaf.cert, [])

    def test_cached(self):
        """The same names give the same leaf object; other names another one."""
        first = self.store.leaf_for(["cached.example", "www.cached.example"])
        self.assertIs(self.store.leaf_for(["cached.example", "www.cached.example"]), first)
        self.assertIsNot(self.store.leaf_for(["www.cached.example"]), first)

    def test_cache_bounded(self):
        """The leaf cache keeps the newest leaves only; the oldest is minted again when asked for."""
        self.patch(certs, "_LEAF_CACHE_SIZE", 3)
        store = CertStore(self.store.ca_cert, self.store.ca_key)
        leaves = [store.leaf_for([f"h{i}.example"]) for i in range(5)]
        self.assertEqual(len(store._leaves), 3)
        self.assertIs(store.leaf_for(["h4.example"]), leaves[4])
        self.assertIsNot(store.leaf_for(["h0.example"]), leaves[0])

    def test_cache_keeps_recently_used(self):
        """A leaf asked for again is kept over leaves minted before it was used."""
        self.patch(certs, "_LEAF_CACHE_SIZE", 3)
        store = CertStore(self.store.ca_cert, self.store.ca_key)
        busy = store.leaf_for(["busy.example"])
        for i in range(5):
            store.leaf_for([f"h{i}.example"])
            self.assertIs(store.leaf_for(["busy.example"]), busy)

    def test_duplicates_and_case(self):
        """Names are lower-cased and each appears once in the SAN, whatever their case."""
        leaf = self.store.leaf_for(["Dup.Example", "dup.example", "DUP.EXAMPLE", "other.example"])
        self.assertEqual(names_of(leaf.cert), ["dup.example", "other.example"])
        self.assertEqual(leaf.names, ("dup.example", "other.example"))

    def test_empty_names_skipped(self):
        """Empty names (a missing SNI) are left out."""
        leaf = self.store.leaf_for(["", "empty.example", None])
        self.assertEqual(names_of(leaf.cert), ["empty.example"])

    def test_long_common_name(self):
        """A name longer than 64 characters still makes a certificate (the CN is cut, the SAN is whole)."""
        name = ("a" * 60) + ".long.example"
        leaf = self.store.leaf_for([name])
        cn = leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        self.assertEqual(len(cn), 64)
        self.assertEqual(names_of(leaf.cert), [name])

    def test_names_of_without_san(self):
        """names_of a certificate without subjectAltName is empty."""
        self.assertEqual(names_of(self.store.ca_cert), [])


class CertstoreForTests(unittest.TestCase):
    """
    L{certstore_for} loads the master's store once, and again when confdir
    or ca_file change.
    """

    def test_cached_and_reloaded(self):
        """The store is kept while the options stay; a new confdir loads another CA."""
        from interceptor.core.options import proxy_options

        class FakeMaster:
            options = proxy_options(confdir=self.mktemp())

        master = FakeMaster()
        first = certstore_for(master)
        self.assertIs(certstore_for(master), first)
        master.options.update(confdir=self.mktemp())
        second = certstore_for(master)
        self.assertIsNot(second, first)
        self.assertNotEqual(second.ca_cert, first.ca_cert)
