"""The download code against a local HTTP server: checksums, cut-off bodies, the cache, offline use."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest
import torch

from localkit_video_backbones import WeightsError
from localkit_video_backbones._download import fetch


def small_weights() -> bytes:
    buffer = io.BytesIO()
    torch.save({"layer.weight": torch.arange(12.0).reshape(3, 4), "layer.bias": torch.ones(3)}, buffer)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def published(server):
    """A small weights file at ``/models/small.pt`` on the server: ``(url, bytes)``."""
    data = small_weights()
    server.files["/models/small.pt"] = data
    return f"{server.url}/models/small.pt", data


def test_matching_checksum_caches_the_file_under_torch_home(published, torch_home):
    url, data = published
    path = fetch(url, name="test", sha256=sha256(data))
    assert path == torch_home / "small.pt"
    assert path.read_bytes() == data
    assert (torch_home / "small.pt.sha256").read_text() == f"{sha256(data)}  small.pt\n"
    assert sorted(p.name for p in torch_home.iterdir()) == ["small.pt", "small.pt.sha256"]
    assert torch.equal(torch.load(path, weights_only=True)["layer.bias"], torch.ones(3))


def test_other_checksum_is_refused_and_nothing_is_cached(published, torch_home):
    url, data = published
    wrong = sha256(b"another file")
    with pytest.raises(WeightsError) as info:
        fetch(url, name="test", sha256=wrong)
    message = str(info.value)
    assert f"has sha256 {sha256(data)}, not the published {wrong}" in message and url in message
    assert not torch_home.exists() or not list(torch_home.iterdir())


@pytest.mark.parametrize("checksum", [True, False], ids=["published-checksum", "no-checksum"])
def test_interrupted_download_leaves_no_partial_file(server, published, torch_home, checksum):
    url, data = published
    server.cut.add("/models/small.pt")
    with pytest.raises(WeightsError, match=r"cannot download .*small\.pt \(IncompleteRead"):
        fetch(url, name="test", sha256=sha256(data) if checksum else None)
    assert not list(torch_home.iterdir())
    server.cut.clear()
    assert fetch(url, name="test", sha256=None).read_bytes() == data


def test_second_call_reads_the_cache_with_the_server_stopped(server, published, torch_home):
    url, data = published
    first = fetch(url, name="test", sha256=sha256(data))
    server.stop()
    assert fetch(url, name="test", sha256=sha256(data)) == first
    assert server.requests == ["/models/small.pt"]


def test_offline_without_the_file_names_the_url_and_the_cache_path(server, published, torch_home):
    url, _ = published
    server.stop()
    with pytest.raises(WeightsError) as info:
        fetch(url, name="i3d", sha256=None)
    message = str(info.value)
    assert message.startswith(f"i3d: cannot download {url} (URLError")
    assert f"put it at {torch_home / 'small.pt'} (torch.hub's cache, under TORCH_HOME)" in message


def test_without_a_published_checksum_the_first_download_is_recorded_and_enforced(
    published, torch_home, caplog
):
    url, data = published
    with caplog.at_level(logging.WARNING, logger="localkit_video_backbones._download"):
        path = fetch(url, name="i3d", sha256=None)
    assert (
        f"nobody publishes a checksum for {url}; recorded the sha256 of this first download, {sha256(data)}"
        in (caplog.text)
    )
    assert (torch_home / "small.pt.sha256").read_text().split()[0] == sha256(data)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the cached file changes after its first download
    with pytest.raises(WeightsError, match=r"recorded in .*small\.pt\.sha256 at its first download"):
        fetch(url, name="i3d", sha256=None)


def test_a_file_put_in_the_cache_by_hand_is_used_offline(server, published, torch_home, caplog):
    url, data = published
    server.stop()
    torch_home.mkdir(parents=True)
    (torch_home / "small.pt").write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="localkit_video_backbones._download"):
        assert fetch(url, name="i3d", sha256=None) == torch_home / "small.pt"
    assert f"recorded its sha256 {sha256(data)}" in caplog.text
    with pytest.raises(WeightsError, match="is damaged or another file. Delete it"):
        fetch(url, name="i3d", sha256=sha256(b"the published file"))
