"""A third-party decoder plugs in through the vidio.decoders entry points, with no change to vidio."""

from __future__ import annotations

import sys
import textwrap
import warnings

import numpy as np
import pytest

import vidio
from localkit_registry import PluginLoadError
from vidio._decoders import DECODERS

PLUGIN = '''
import numpy as np
import vidio


class Mirror(vidio.Decoder):
    """Reads through PyAV, returns what PyAV returns."""

    name = "mirror"

    def __init__(self, info, **options):
        super().__init__(info, **options)
        self.reference = vidio.open(info.path, backend="pyav")

    def read(self, indices, size):
        return self.reference.get(indices, size)


class Picky(vidio.Decoder):
    name = "picky"

    def __init__(self, info, **options):
        raise vidio.UnsupportedVideoError.about(info.path, "picky only reads its own files")

    def read(self, indices, size):
        raise AssertionError("never constructed")


class Sloppy(vidio.Decoder):
    name = "sloppy"

    def read(self, indices, size):
        return np.zeros((len(indices), 2, 2, 3), dtype=np.uint8)
'''


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    (tmp_path / "mirror_plugin.py").write_text(PLUGIN)
    info = tmp_path / "mirror_plugin-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mirror-plugin\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [vidio.decoders]
            mirror = mirror_plugin:Mirror
            picky = mirror_plugin:Picky
            sloppy = mirror_plugin:Sloppy
            broken = mirror_plugin_missing:Nothing
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("LOCALKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    DECODERS.refresh()
    yield
    sys.modules.pop("mirror_plugin", None)
    DECODERS.refresh()


def test_listing_sees_plugins_without_importing_them(plugin_dist):
    assert {"mirror", "picky", "sloppy", "broken"} <= set(vidio.list_decoders())
    assert "mirror_plugin" not in sys.modules


def test_a_plugin_decoder_reads_through_the_common_reader(plugin_dist, videos, reference):
    expected = reference(videos["vp9.webm"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        video = vidio.open(videos["vp9.webm"], backend="mirror")
    assert video.backend == "mirror"
    np.testing.assert_array_equal(video.get([9, 2, 9]), expected[[9, 2, 9]])
    assert vidio.provenance()["vidio.decoders"]["mirror"]["distribution"] == "mirror-plugin"


def test_a_plugin_that_cannot_read_a_file_hands_it_to_pyav(plugin_dist, videos, reference):
    with pytest.warns(vidio.DecoderFallbackWarning, match="picky only reads its own files"):
        video = vidio.open(videos["h264.mp4"], backend="picky")
    assert video.backend == "pyav"
    np.testing.assert_array_equal(video.get([4]), reference(videos["h264.mp4"])[[4]])


def test_a_plugin_returning_wrong_frames_is_caught(plugin_dist, videos):
    with pytest.raises(vidio.VideoDecodeError, match="decoder 'sloppy' returned uint8 frames of shape"):
        vidio.open(videos["h264.mp4"], backend="sloppy").get([0])


def test_a_broken_plugin_is_reported_with_its_distribution(plugin_dist, videos):
    with pytest.raises(PluginLoadError, match="mirror-plugin 1.2.*No module named .mirror_plugin_missing."):
        vidio.open(videos["h264.mp4"], backend="broken")
    assert vidio.open(videos["h264.mp4"], backend="pyav").backend == "pyav"
