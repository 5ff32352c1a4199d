"""The quick hub reachability probe and the temporarily shortened hub time-outs."""

from __future__ import annotations

import socket
import time

from napari_dinotrack.backbone import hub


def test_hub_probe(monkeypatch) -> None:
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub.reachable(timeout=2)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # now closed
    t0 = time.perf_counter()
    assert not hub.reachable(timeout=2)
    assert time.perf_counter() - t0 < 3


def test_short_hub_timeouts_restore() -> None:
    from huggingface_hub import constants

    before = (constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT)
    with hub.short_timeouts():
        assert constants.HF_HUB_ETAG_TIMEOUT <= hub.ETAG_TIMEOUT_S
    assert before == (constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT)
