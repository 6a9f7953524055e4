"""May we download, and can a source's host be reached? Answered quickly, so that a machine without a
network hears so in seconds rather than after every client's retries.

* :func:`offline_reason`: downloads nobody asked for (first use, the app's Download button) are off
  when ``MATTING_OFFLINE=1``, ``HF_HUB_OFFLINE=1`` (Hugging Face's convention) or ``MATTING_AUTO_FETCH=0``
  is set; they are on otherwise.
* :func:`probe`: before a fetch tries its sources, one TCP connection per host (or per proxy) is
  opened, all at once, with a short timeout (:data:`PROBE_TIMEOUT_S`). A host that does not answer is
  remembered for :data:`UNREACHABLE_MEMORY_S`, and its sources are skipped without waiting, in this
  fetch and in later ones.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
import urllib.request

from ._fs import env_flag, short_reason
from .manifest import Source

PROBE_TIMEOUT_S = 3.0
UNREACHABLE_MEMORY_S = 60

# host label (netloc) -> (when it failed, why)
_unreachable_hosts: dict[str, tuple[float, str]] = {}


def _env_off(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")


def offline_reason() -> str | None:
    """Why downloads on first use are off (naming the setting), or ``None`` when they are on."""
    for name in ("MATTING_OFFLINE", "HF_HUB_OFFLINE"):
        if env_flag(name):
            return f"{name} is set"
    if _env_off("MATTING_AUTO_FETCH"):
        return "MATTING_AUTO_FETCH=0 is set"
    return None


def _source_url(source: Source) -> str | None:
    if source.kind == "url":
        return source.url
    if source.kind == "hf":
        try:
            from huggingface_hub import constants
        except ImportError:
            return None
        return constants.ENDPOINT
    return None  # pip has its own index settings, timeouts and retries


def host_label(source: Source) -> str | None:
    """The ``host[:port]`` a source downloads from (the key of the unreachable-host memory)."""
    url = _source_url(source)
    return urllib.parse.urlsplit(url).netloc if url else None


def _address(source: Source) -> tuple[str, int] | None:
    """Where a connection for ``source`` goes first: its host, or the proxy that the environment names."""
    url = _source_url(source)
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_parts.hostname:
            return proxy_parts.hostname, proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def remember_unreachable(label: str | None, reason: str) -> None:
    if label:
        _unreachable_hosts[label] = (time.monotonic(), reason)


def recently_unreachable(label: str | None) -> str | None:
    """The reason to skip a source on ``label`` without trying it, or ``None``."""
    if label is None or label not in _unreachable_hosts:
        return None
    since, reason = _unreachable_hosts[label]
    if time.monotonic() - since > UNREACHABLE_MEMORY_S:
        _unreachable_hosts.pop(label, None)
        return None
    return f"skipped: {label} was unreachable moments ago ({reason})"


def probe(sources) -> dict[str, str]:
    """Open one connection to each host of ``sources`` not already known to be unreachable, all at
    once; remember those that fail or do not answer within :data:`PROBE_TIMEOUT_S`, and return them
    (host label -> reason)."""
    targets = {}
    for source in sources:
        label, address = host_label(source), _address(source)
        if label and address and label not in targets and recently_unreachable(label) is None:
            targets[label] = address
    if not targets:
        return {}
    answers: dict[str, str | None] = {}

    def attempt(label, address):
        try:
            socket.create_connection(address, timeout=PROBE_TIMEOUT_S).close()
            answers[label] = None
        except OSError as exc:
            answers[label] = short_reason(exc)

    threads = [threading.Thread(target=attempt, args=item, daemon=True, name=f"probe {item[0]}")
               for item in targets.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + PROBE_TIMEOUT_S + 0.5  # the name lookup is not bounded by the timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    failed = {}
    for label in targets:
        reason = answers.get(label, "timed out")
        if reason is not None:
            remember_unreachable(label, reason)
            failed[label] = reason
    return failed
