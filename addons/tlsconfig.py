# -*- test-case-name: tests.e2e.test_tls -*-
"""
Loads the certificate authority when the proxy starts (creating it in the
confdir on first start), and again when C{confdir} or C{ca_file} change.
An unusable CA file is a clear option error naming the file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from twisted.logger import Logger
from zope.interface import implementer

from interceptor.tls.certs import CertError
from interceptor.core.interfaces import IConfigure
from interceptor.core.options import OptionsError
from interceptor.tls.contexts import certstore_for

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = ["TlsConfig"]

_log = Logger(namespace="interceptor.tlsconfig")


@implementer(IConfigure)
class TlsConfig:
    """
    Keeps the master's certificate store in line with its options.
    """

    name = "tlsconfig"

    def __init__(self) -> None:
        self.master: Optional[Master] = None

    def load(self, loader: Loader) -> None:
        """
        Remember the master whose store this addon loads.
        """
        self.master = loader.master

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Load (or create) the CA.

        @raise OptionsError: The CA file cannot be used.
        """
        if self.master is not None and {"confdir", "ca_file"} & updated:
            try:
                store = certstore_for(self.master)
            except CertError as e:
                raise OptionsError(str(e)) from None
            if options.ca_file:
                _log.info("CA (ca_file): {path}", path=os.path.expanduser(options.ca_file))
            else:
                _log.info("CA certificate for clients: {path}", path=store.ca_file(".pem"))
