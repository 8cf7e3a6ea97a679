# -*- test-case-name: tests.test_certs,tests.e2e.test_tls -*-
"""
Per-master TLS state: the certificate store (the CA in the confdir, or the
user's C{ca_file}) and the upstream TLS contexts.

    store = certstore_for(master)        # loaded once, reloaded when confdir/ca_file change
    contexts = upstream_contexts(master)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional
from weakref import WeakKeyDictionary

from interceptor.tls.certs import CertStore
from interceptor.tls.handshake import UpstreamContexts

if TYPE_CHECKING:
    from interceptor.core.master import Master

__all__ = ["certstore_for", "upstream_contexts", "UpstreamTLSError"]


class UpstreamTLSError(Exception):
    """
    An upstream server's certificate failed verification.
    """


# Per master: the store with the (confdir, ca_file) it was loaded for, and
# the upstream contexts; they go with the master.
_stores: WeakKeyDictionary[Master, tuple[tuple[str, Optional[str]], CertStore]] = (
    WeakKeyDictionary()
)
_upstream: WeakKeyDictionary[Master, UpstreamContexts] = WeakKeyDictionary()


def certstore_for(master: Master) -> CertStore:
    """
    The master's L{CertStore}, loaded (or created) from its options.

    @raise interceptor.certs.CertError: The CA file cannot be used.
    """
    options = master.options
    key = (options.confdir, options.ca_file)
    cached = _stores.get(master)
    if cached is None or cached[0] != key:
        cached = (key, CertStore.from_confdir(options.confdir, options.ca_file))
        _stores[master] = cached
    return cached[1]


def upstream_contexts(master: Master) -> UpstreamContexts:
    """
    The master's cache of upstream TLS contexts.
    """
    contexts = _upstream.get(master)
    if contexts is None:
        contexts = _upstream[master] = UpstreamContexts()
    return contexts
