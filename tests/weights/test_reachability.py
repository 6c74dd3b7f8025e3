"""The Hub probed once (osdface.weights.reachability): when it cannot be reached, weights come from
the local cache at once instead of after a minute of huggingface_hub's retries."""

from __future__ import annotations

import socket

import huggingface_hub.constants as hub_constants
import pytest

from osdface.weights import hub, reachability


@pytest.fixture
def closed_endpoint(monkeypatch):
    """huggingface_hub online, its endpoint a bound port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setattr(hub_constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        reachability.forget()
        yield endpoint
    reachability.forget()


def test_an_unreachable_hub_is_probed_once_and_remembered(closed_endpoint, monkeypatch):
    calls = []
    real_probe = reachability.probe_hub

    def counted(endpoint=None, timeout=reachability.PROBE_TIMEOUT_S):
        calls.append(endpoint)
        return real_probe(endpoint, timeout)

    monkeypatch.setattr(reachability, "probe_hub", counted)
    first, second = reachability.hub_unreachable(), reachability.hub_unreachable()
    assert first is second and not first.reachable and first.endpoint == closed_endpoint
    assert first.reason and calls == [closed_endpoint]
    monkeypatch.setattr(reachability, "REMEMBER_S", 0.0)  # the minute has passed: probe again
    assert reachability.hub_unreachable() is not None and len(calls) == 2


def test_a_listening_hub_is_reachable(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        reachability.forget()
        try:
            assert reachability.hub_unreachable() is None
        finally:
            reachability.forget()


def test_fetch_reads_the_cache_when_the_hub_is_unreachable(tiny_hub, closed_endpoint):
    """Through the real hf_hub_download: a cached file is found, a missing one is named with the
    probe's reason; neither waits for retries (with retries the missing file took about 23 s)."""
    path = hub.fetch(tiny_hub.weights_repo, hub.LORA_WEIGHTS)
    assert path.is_file() and path.name == hub.LORA_WEIGHTS
    assert hub.fetch_optional(tiny_hub.weights_repo, "not-there.bin") is None
    with pytest.raises(hub.WeightsUnavailableError) as error:
        hub.fetch("osdface-test/never-cached", hub.VRE_CHECKPOINT)
    message = str(error.value)
    assert f"the Hub could not be reached ({closed_endpoint}: " in message
    assert "nothing of Hub repo 'osdface-test/never-cached' is in the local cache" in message
    assert "hf download osdface-test/never-cached" in message
