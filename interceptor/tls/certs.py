# -*- test-case-name: tests.test_certs -*-
"""
The proxy's certificate authority and the leaf certificates it mints.

    store = CertStore.from_confdir("~/.interceptor")    # creates the CA on first use
    leaf = store.leaf_for(["example.org", "www.example.org"])
    leaf.cert, leaf.key                                  # cryptography objects

On first use the confdir gets:

- C{interceptor-ca.pem}: the CA's private key and certificate (mode 0600);
- C{interceptor-ca-cert.pem}: the certificate alone, to hand to clients;
- C{interceptor-ca-cert.cer}: the same, named as Android and Windows like;
- C{interceptor-ca-cert.p12}: the certificate as PKCS#12, for devices.

Afterwards the files are loaded as they are.  One leaf key is made per
store, so minting a certificate for a new host costs one signature.  Keys
are ECDSA P-256: fast to sign with (a TLS handshake costs the proxy one
signature per client) and accepted by every current client.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import TYPE_CHECKING, Iterable, Optional, Sequence, TypeGuard, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from OpenSSL import SSL

__all__ = ["CertStore", "Leaf", "CertError", "CA_BASENAME", "names_of", "general_name"]

CA_BASENAME = "interceptor-ca"
_CA_VALIDITY = datetime.timedelta(days=3650)
_LEAF_VALIDITY = datetime.timedelta(days=365)
# Minted leaves (and their TLS contexts) kept for hosts seen before; the least
# recently used goes first.  Bounded: a client visiting many hosts must not grow
# the proxy without end.
_LEAF_CACHE_SIZE = 1024
# The CA certificate files handed to clients (see L{CertStore.ca_file}).
_CLIENT_SUFFIXES = (".pem", ".cer", ".p12")

PrivateKey = CertificateIssuerPrivateKeyTypes
"""A key that can sign certificates, as a CA's must."""

_SIGNING_KEYS = get_args(CertificateIssuerPrivateKeyTypes)


def _can_sign(key: PrivateKeyTypes) -> TypeGuard[PrivateKey]:
    return isinstance(key, _SIGNING_KEYS)


def _ca_file(confdir: str, suffix: str) -> str:
    return os.path.join(confdir, CA_BASENAME + "-cert" + suffix)


class CertError(Exception):
    """
    A CA file that cannot be used: unreadable, not PEM, or whose key does not
    match its certificate.
    """


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def general_name(name: str) -> x509.GeneralName:
    """
    A subjectAltName entry for C{name}: an IP address entry for an address,
    else a DNS name.
    """
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def names_of(cert: x509.Certificate) -> list[str]:
    """
    The DNS names and IP addresses a certificate's subjectAltName covers.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def _self_signed(cert: x509.Certificate) -> bool:
    """
    Whether C{cert} is a root: issued by itself, under its own key.
    """
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class Leaf:
    """
    A minted certificate with the key it certifies and the chain to send.

    @ivar contexts: TLS contexts presenting this leaf (see
        L{interceptor.tls.ServerTLS.for_leaf}), which live as long as the
        leaf stays cached.
    @ivar first_use: The ALPN answers this leaf was presented with once
        already (without a context of its own).
    """

    __slots__ = ("cert", "key", "chain", "names", "contexts", "first_use")

    def __init__(
        self,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        chain: Sequence[x509.Certificate],
        names: tuple[str, ...],
    ) -> None:
        self.cert = cert
        self.key = key
        self.chain = list(chain)
        self.names = names
        # Per ALPN answer (None: no ALPN).
        self.contexts: dict[Optional[bytes], SSL.Context] = {}
        self.first_use: set[Optional[bytes]] = set()


class CertStore:
    """
    The CA, the shared leaf key, and a cache of minted leaves.

    @ivar ca_cert: The CA certificate.
    @ivar ca_key: The CA's private key.
    @ivar confdir: Where the CA files live (None for an in-memory store).
    """

    def __init__(
        self,
        ca_cert: x509.Certificate,
        ca_key: PrivateKey,
        confdir: Optional[str] = None,
    ) -> None:
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.confdir = confdir
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        # Strict verifiers (Python 3.13's default context, cryptography's)
        # need both key identifiers.
        self._authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()
        )
        self._leaf_key_id = x509.SubjectKeyIdentifier.from_public_key(self.leaf_key.public_key())
        # What goes after the leaf in the handshake: nothing for a root CA
        # (clients that trust the proxy have it already; RFC 8446 4.4.2 lets
        # a trust anchor be left out, and parsing it again costs every
        # client a certificate per handshake), the CA itself if it is an
        # intermediate (a user-supplied CA signed by another).
        self._chain = [] if _self_signed(ca_cert) else [ca_cert]
        self._leaves: dict[tuple[str, ...], Leaf] = {}
        self._client_files: dict[str, bytes] = {}
        self._hash = hashes.SHA256()

    # -- the CA -----------------------------------------------------------

    @staticmethod
    def create_ca(common_name: str = "interceptor") -> tuple[x509.Certificate, PrivateKey]:
        """
        A new self-signed CA certificate and its key.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2))
            .not_valid_after(now + _CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    @classmethod
    def from_pem_file(cls, path: str, confdir: Optional[str] = None) -> "CertStore":
        """
        Load a CA from one PEM file holding its private key and certificate.

        @raise CertError: The file cannot be read, holds no key or
            certificate, or the key does not match the certificate.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CertError(f"cannot read CA file {path}: {e.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise CertError(f"CA file {path} holds no usable private key: {e}") from None
        if not _can_sign(key):
            raise CertError(f"CA file {path}: its {type(key).__name__} cannot sign certificates")
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as e:
            raise CertError(f"CA file {path} holds no certificate: {e}") from None
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        if key.public_key().public_bytes(encoding, public) != cert.public_key().public_bytes(
            encoding, public
        ):
            raise CertError(f"CA file {path}: the private key does not match the certificate")
        return cls(cert, key, confdir)

    @classmethod
    def from_confdir(cls, confdir: str, ca_file: Optional[str] = None) -> "CertStore":
        """
        Load the CA from C{confdir}, creating it (and the files to hand to
        clients) on first use; or load a user-supplied C{ca_file}.

        @raise CertError: An existing file cannot be used, or the confdir
            cannot hold a new CA (not a directory, not writable).
        """
        confdir = os.path.abspath(os.path.expanduser(confdir))
        if ca_file:
            return cls.from_pem_file(os.path.expanduser(ca_file), confdir)
        path = os.path.join(confdir, CA_BASENAME + ".pem")
        if not os.path.exists(path):
            if os.path.exists(confdir) and not os.path.isdir(confdir):
                raise CertError(f"confdir {confdir} is not a directory")
            cert, key = cls.create_ca()
            store = cls(cert, key, confdir)
            try:
                store.write_files()
            except OSError as e:
                raise CertError(
                    f"cannot create the CA in confdir {confdir}: {e.strerror}"
                    + (f" ({e.filename})" if e.filename else "")
                ) from None
            return store
        store = cls.from_pem_file(path, confdir)
        for suffix in _CLIENT_SUFFIXES:
            try:
                with open(_ca_file(confdir, suffix), "rb") as f:
                    store._client_files[suffix] = f.read()
            except OSError:
                pass
        return store

    def write_files(self) -> None:
        """
        Write the CA files into the confdir.
        """
        confdir = self.confdir
        assert confdir is not None
        os.makedirs(confdir, exist_ok=True)
        cert_pem = self.ca_cert_bytes(".pem")
        key_pem = self.ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        secret = os.path.join(confdir, CA_BASENAME + ".pem")
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem + cert_pem)
        os.chmod(secret, 0o600)
        for suffix in _CLIENT_SUFFIXES:
            with open(_ca_file(confdir, suffix), "wb") as f:
                f.write(self.ca_cert_bytes(suffix))

    def ca_cert_bytes(self, suffix: str = ".pem") -> bytes:
        """
        The CA certificate as clients take it: PEM for C{.pem} and C{.cer},
        PKCS#12 for C{.p12}.  Made once from the loaded CA (wherever it came
        from), so the files written and the bytes served are the same.
        """
        data = self._client_files.get(suffix)
        if data is None:
            if suffix == ".p12":
                data = pkcs12.serialize_key_and_certificates(
                    b"interceptor", None, self.ca_cert, None, serialization.NoEncryption()
                )
            else:
                data = self.ca_cert.public_bytes(serialization.Encoding.PEM)
            self._client_files[suffix] = data
        return data

    def ca_file(self, suffix: str = ".pem") -> Optional[str]:
        """
        The path of the client-facing CA certificate file (C{.pem}, C{.cer}
        or C{.p12}), or None for an in-memory store.
        """
        if self.confdir is None:
            return None
        return _ca_file(self.confdir, suffix)

    # -- leaves -----------------------------------------------------------

    def leaf_for(self, names: Iterable[str]) -> Leaf:
        """
        A certificate covering C{names} (DNS names or IP addresses; the
        first is the common name), minted once and then cached.
        """
        unique: list[str] = []
        for name in names:
            name = name.lower() if name else name
            if name and name not in unique:
                unique.append(name)
        key = tuple(unique)
        leaves = self._leaves
        leaf = leaves.pop(key, None)
        if leaf is not None:
            leaves[key] = leaf  # the newest again: dropped last
        else:
            leaf = self._mint(key)
            if len(leaves) >= _LEAF_CACHE_SIZE:
                leaves.pop(next(iter(leaves)))
            leaves[key] = leaf
        return leaf

    def _mint(self, names: tuple[str, ...]) -> Leaf:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .issuer_name(self.ca_cert.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2))
            .not_valid_after(now + _LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(self._authority_key_id, critical=False)
            .add_extension(self._leaf_key_id, critical=False)
        )
        common_name = names[0][:64] if names else "interceptor"
        builder = builder.subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([general_name(n) for n in names]), critical=False
            )
        cert = builder.sign(self.ca_key, self._hash)
        return Leaf(cert, self.leaf_key, self._chain, names)
