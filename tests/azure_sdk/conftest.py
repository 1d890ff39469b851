"""Shared setup of the Azure SDK judge tests, run by tests/azure_sdk.rs against the in-process fakes.

The Rust test passes every endpoint, identity and file in environment variables (see `env`). The
fake vault is reached by a name under a custom cloud's vault DNS suffix
(`https://fakevault.vault.localhost`, port 443 as a real vault), which
AMLSECRETS_SDK_CONNECT_TO maps to the fake's loopback port: the one thing patched here is name
resolution (like `curl --connect-to`); TLS, the Host header and everything the SDK does are its own.
"""

import base64
import json
import os
import socket

import pytest

_real_getaddrinfo = socket.getaddrinfo
_connect_to = {}
for _item in filter(None, os.environ.get("AMLSECRETS_SDK_CONNECT_TO", "").split(",")):
    _src, _dst = _item.split("=")
    _host, _port = _src.rsplit(":", 1)
    _dhost, _dport = _dst.rsplit(":", 1)
    _connect_to[(_host.lower(), int(_port))] = (_dhost, int(_dport))


def _getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    try:
        key = (str(name).lower(), int(port))
    except (TypeError, ValueError):
        key = None
    if key in _connect_to:
        return _real_getaddrinfo(*_connect_to[key], *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


def env(name):
    """Returns a variable the Rust test must have set (failing loudly when it did not)."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through `cargo test --test azure_sdk`")
    return value


def claims(token):
    """Decodes (without verifying) the claims of a JWT-shaped access token, as jwt.ms shows them."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# What a user of a custom cloud (private authority host) passes: MSAL's instance discovery would
# otherwise ask the public cloud's authority whether the host is known, and refuse it.
CUSTOM_AUTHORITY = {"disable_instance_discovery": True}

VAULT_SCOPE = "https://vault.localhost/.default"
