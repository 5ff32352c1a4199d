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


def _hub_error(kind: str, status: int):
    import httpx
    from huggingface_hub import errors

    request = httpx.Request(
        "GET", "https://huggingface.co/facebook/dinov3-vits16-pretrain-lvd1689m/resolve/main/config.json"
    )
    return getattr(errors, kind)("Client error for url", response=httpx.Response(status, request=request))


def _hub_download_fails(monkeypatch, error: BaseException) -> None:
    """Online, nothing cached, and the hub answers a download with ``error`` (wrapped as transformers does)."""
    from napari_dinotrack.backbone import hf

    monkeypatch.setattr(hub, "offline_setting", lambda: None)
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: True)

    def from_pretrained(*args, **kwargs):
        try:
            raise error
        except Exception as exc:
            raise OSError("We couldn't connect to the model repository") from exc

    monkeypatch.setattr(hf, "_from_pretrained", from_pretrained)


def test_a_gated_model_says_log_in_and_accept_the_licence(monkeypatch) -> None:
    import pytest

    from napari_dinotrack.backbone.loader import load_backbone
    from napari_dinotrack.errors import BackboneUnavailableError

    _hub_download_fails(monkeypatch, _hub_error("GatedRepoError", 403))
    with pytest.raises(BackboneUnavailableError) as info:
        load_backbone("dinov3-vits16", device="cpu")
    text = str(info.value)
    assert "gated model" in text and "hf auth login" in text and "dinov2" in text


def test_a_model_the_hub_does_not_have_is_named_missing(monkeypatch) -> None:
    import pytest

    from napari_dinotrack.backbone.loader import load_backbone
    from napari_dinotrack.errors import BackboneUnavailableError

    _hub_download_fails(monkeypatch, _hub_error("RepositoryNotFoundError", 404))
    with pytest.raises(BackboneUnavailableError) as info:
        load_backbone("someone/no-such-dino", device="cpu")
    assert "no such model repository" in str(info.value) and "gated" not in str(info.value).split("To fix")[0]
