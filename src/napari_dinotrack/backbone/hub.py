"""The Hugging Face hub as this package sees it: its cache folder, the offline switches, a quick
reachability probe and short time-outs.

huggingface_hub retries unreachable hosts for minutes; probing first and shortening its
time-outs lets a missing model be reported within seconds instead.

Importing this module does not import huggingface_hub; it loads on first use.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

__all__ = ["default_cache_dir", "offline_setting", "reachable", "short_timeouts"]

PROBE_TIMEOUT_S = 3.0
ETAG_TIMEOUT_S = 5
DOWNLOAD_TIMEOUT_S = 15

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_TRUE = {"1", "true", "yes", "on"}


def offline_setting() -> str | None:
    """Name of the environment variable that forbids network access, or None."""
    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return var
    return None


def default_cache_dir() -> str:
    """The hub cache directory, from the environment as it is *now* (not at import time)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.join(os.path.expanduser(xdg), "huggingface", "hub")


def reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """A quick TCP check that the hub endpoint (or the configured HTTPS proxy) answers."""
    target = next((os.environ[var] for var in _PROXY_VARS if os.environ.get(var)), None)
    if target is None:
        target = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if "://" not in target:
        target = "http://" + target
    parts = urlsplit(target)
    if not parts.hostname:
        return True  # cannot tell; let the hub client decide
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return True
    result: list[bool] = []
    t = threading.Thread(target=_probe, args=(parts.hostname, port, timeout, result), daemon=True)
    t.start()
    t.join(timeout + 0.5)  # getaddrinfo has no timeout of its own
    return bool(result and result[0])


def _probe(host: str, port: int, timeout: float, result: list[bool]) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        result.append(True)
    except OSError:
        result.append(False)


@contextmanager
def short_timeouts() -> Iterator[None]:
    """Lower huggingface_hub's metadata/download time-outs for one call.

    The HF_HUB_*_TIMEOUT environment variables are only read when huggingface_hub is imported,
    so the module constants are patched (and restored) instead.
    """
    from huggingface_hub import constants

    old = (constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT)
    constants.HF_HUB_ETAG_TIMEOUT = min(old[0], ETAG_TIMEOUT_S)
    constants.HF_HUB_DOWNLOAD_TIMEOUT = min(old[1], DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT = old
