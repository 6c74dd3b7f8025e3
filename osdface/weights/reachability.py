"""Is the Hugging Face Hub reachable? One short probe instead of a minute of retries.

When the Hub cannot be reached, ``huggingface_hub`` retries every file five times (1+2+4+8+8 s)
before it falls back to the local cache: ``osdface restore`` or ``osdface doctor`` without a
network would print retry warnings for about 45 s before saying what is missing.
``hub_unreachable()`` opens one TCP connection to the Hub's host with a short timeout and
remembers the answer for ``REMEMBER_S`` seconds; ``osdface.weights.hub.fetch`` then reads only the
local cache when the Hub is down, and names the probe's reason in its error.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from osdface import lazy

# huggingface_hub reads its settings (HF_ENDPOINT) when it is imported: not before a caller's.
hub_constants = lazy.module("huggingface_hub.constants")

PROBE_TIMEOUT_S = 3.0
# A server that started without a network finds the Hub again a minute after it comes back.
REMEMBER_S = 60.0


@dataclass(frozen=True)
class HubProbe:
    """The result of probing the Hub: ``reachable`` and, when not, ``reason``; ``seconds`` spent."""

    endpoint: str
    reachable: bool
    reason: str | None
    seconds: float


def probe_hub(endpoint: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> HubProbe:
    """Open one TCP connection to the Hub's host. Name resolution has no timeout of its own,
    so the attempt runs in a thread that is given up after ``timeout`` seconds."""
    if endpoint is None:
        endpoint = hub_constants.ENDPOINT
    parsed = urlparse(endpoint)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: dict[str, str | None] = {}

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome["reason"] = None
        except OSError as exc:
            outcome["reason"] = str(exc) or type(exc).__name__

    started = time.perf_counter()
    worker = threading.Thread(target=attempt, daemon=True, name="hub-probe")
    worker.start()
    worker.join(timeout)
    reason = outcome["reason"] if "reason" in outcome else f"no answer within {timeout:g} s"
    return HubProbe(endpoint, reason is None, reason, time.perf_counter() - started)


_remembered: dict[str, tuple[float, HubProbe]] = {}
_lock = threading.Lock()


def hub_unreachable() -> HubProbe | None:
    """The failed probe when the Hub (``HF_ENDPOINT``) cannot be reached, else None; probed at most
    once per ``REMEMBER_S`` seconds per endpoint, by one thread while the others wait for it."""
    endpoint = hub_constants.ENDPOINT
    with _lock:
        when, probe = _remembered.get(endpoint, (-REMEMBER_S, None))
        if probe is None or time.monotonic() - when >= REMEMBER_S:
            probe = probe_hub(endpoint)
            _remembered[endpoint] = (time.monotonic(), probe)
    return None if probe.reachable else probe


def forget() -> None:
    """Probe again at the next ``hub_unreachable()`` (the network came back; tests)."""
    with _lock:
        _remembered.clear()
