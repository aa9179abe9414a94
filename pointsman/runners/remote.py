"""Runners elsewhere: the addresses a front calls over TCP instead of starting runners itself.

`remote_runners` maps `MODEL:VERSION`, `MODEL` or `*` (first match wins, in that order) to
a comma-separated list of `host:port`, each one runner; `{model}` and `{version}` in it are
filled in (`{model}` made fit for a DNS name), so that one line serves every version when
each runs behind its own Service: `"*" = "pointsman-runner-{model}-{version}:7070"`. A name
that resolves to several addresses (a headless Service) is one runner per address.
"""

from __future__ import annotations

import re
import socket

from pointsman.errors import ConfigError
from pointsman.routing.revisions import Preflight

_DNS = re.compile(r"[^a-z0-9-]+")
DEFAULT_PORT = 7070
MIN_SECRET = 16


def check_secret(secret: str, what: str) -> bytes:
    """The runner secret as bytes; ConfigError when missing or short (it guards a port)."""
    if len(secret) < MIN_SECRET:
        state = "is not set" if not secret else f"has {len(secret)} characters"
        raise ConfigError(
            f"{what} needs runner_secret (POINTSMAN_RUNNER_SECRET) of at least {MIN_SECRET} "
            f"characters, the same on the server and its runners; it {state}. Make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return secret.encode()


def dns_name(model: str) -> str:
    """`Churn_EU` → `churn-eu`: a model name as a piece of a Kubernetes object name."""
    name = _DNS.sub("-", model.lower()).strip("-")
    return name[:40].strip("-") or "model"


def split_address(text: str, what: str = "runner address") -> tuple[str, int]:
    """`host:port` (`[::1]:7070` for IPv6) → (host, port); ConfigError naming it otherwise."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{what} {text!r} is not host:port; write e.g. 127.0.0.1:7070 or runner-churn:7070."
        )
    return host, int(port)


class RemoteRunners:
    """Which versions run elsewhere, and where (from the remote_runners setting)."""

    def __init__(self, mapping: dict[str, str], secret: str = "") -> None:
        self.mapping = {k.strip(): v for k, v in mapping.items()}
        self.secret = check_secret(secret, "remote_runners") if self.mapping else None
        for key in self.mapping:  # refuse a bad entry at start, not at the first request
            for address in self.addresses_for(key, "model", 1):
                split_address(address, f"remote_runners[{key!r}]")

    def __bool__(self) -> bool:
        return bool(self.mapping)

    def addresses(self, model: str, version: int) -> list[str] | None:
        """The runners of `version` (host:port each), or None when they run here."""
        for key in (f"{model}:{version}", model, "*"):
            if key in self.mapping:
                return self.addresses_for(key, model, version)
        return None

    def addresses_for(self, key: str, model: str, version: int) -> list[str]:
        text = self.mapping[key].replace("{model}", dns_name(model))
        text = text.replace("{version}", str(version))
        return [a.strip() for a in text.split(",") if a.strip()]

    def is_remote(self, model: str, version: int) -> bool:
        return self.addresses(model, version) is not None

    def local_only(self, preflight: Preflight) -> Preflight:
        """`preflight` for the versions that run here; remote ones are warm once connected,
        which the catalog waits for before it takes a route."""

        def check(model: str, numbers: list[int]) -> None:
            preflight(model, [n for n in numbers if not self.is_remote(model, n)])

        return check


def expand(addresses: list[str]) -> list[str]:
    """Each address once per IP its name resolves to (a headless Service: one per pod);
    a name that does not resolve (yet) stays as it is, to be tried again."""
    out: list[str] = []
    for address in addresses:
        host, port = split_address(address)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            infos = []
        ips = sorted({str(info[4][0]) for info in infos})
        if len(ips) <= 1:
            out.append(address)
        else:
            out += [f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip in ips]
    return out
