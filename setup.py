"""Packaging for interceptor: an intercepting proxy built natively on Twisted."""

from setuptools import find_packages, setup

setup(
    name="interceptor",
    version="0.1.0",
    description="An intercepting HTTP/1.1, HTTP/2, HTTPS, WebSocket and TCP proxy built on Twisted",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["interceptor", "interceptor.*", "addons", "addons.*"])
    + ["twisted.plugins"],
    package_data={"twisted": ["plugins/interceptor_plugin.py"]},
    install_requires=[
        "twisted[tls,http2]>=26.10",
        "service-identity>=24.1",
        "pyopenssl>=24.0",
        "cryptography>=42",
        "h2>=4.1",
        "autobahn>=23.6",
        "zope.interface>=6.0",
        "httptools>=0.6",
        "wsproto>=1.2",
        "websockets>=13.0",
        "brotli>=1.1",
        "zstandard>=0.22",
        "bcrypt>=4.1",
        "msgpack>=1.0",
    ],
    entry_points={"console_scripts": ["interceptor-read = interceptor.readflows:run"]},
    # What the test suite uses besides the proxy's own dependencies (README's first line installs it).
    extras_require={"dev": ["treq>=23.11", "httpx[http2]>=0.27", "jsonschema>=4", "hypothesis>=6"]},
    classifiers=["Framework :: Twisted", "Programming Language :: Python :: 3"],
)
