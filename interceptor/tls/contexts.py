# -*- test-case-name: tests.test_certs,tests.e2e.test_tls -*-
"""
Per-master TLS state: the certificate store (the CA in the confdir, or the
user's C{ca_file}) and the upstream TLS contexts.

    store = certstore_for(master)        # loaded once, reloaded when confdir/ca_file change
    contexts = upstream_contexts(master)
"""

from __future__ import annotations

from typing import Any

from interceptor.tls.certs import CertStore
from interceptor.tls.handshake import UpstreamContexts

__all__ = ["certstore_for", "upstream_contexts", "UpstreamTLSError"]


class UpstreamTLSError(Exception):
    """
    An upstream server's certificate failed verification.
    """


def certstore_for(master: Any) -> CertStore:
    """
    The master's L{CertStore}, loaded (or created) from its options.

    @raise interceptor.certs.CertError: The CA file cannot be used.
    """
    options = master.options
    key = (options.confdir, options.ca_file)
    cached = getattr(master, "_certstore", None)
    if cached is None or cached[0] != key:
        cached = (key, CertStore.from_confdir(options.confdir, options.ca_file))
        master._certstore = cached
    return cached[1]


def upstream_contexts(master: Any) -> UpstreamContexts:
    """
    The master's cache of upstream TLS contexts.
    """
    contexts = getattr(master, "_upstream_contexts", None)
    if contexts is None:
        contexts = master._upstream_contexts = UpstreamContexts()
    return contexts
