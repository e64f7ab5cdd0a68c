"""Published weight files: downloaded once into torch.hub's cache, verified, then read offline.

Files live where ``torch.hub.load_state_dict_from_url`` keeps them, ``$TORCH_HOME/hub/checkpoints``
under the file name the URL ends in, so a file fetched by torch.hub, torchvision or another
library from the same URL is reused. Unlike ``torch.hub.download_url_to_file``, which accepts a
body cut short when it has no hash to check, a download here must deliver every byte its
``Content-Length`` announced before it replaces anything in the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import torch.hub

from ._weights import WeightsError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60  # per blocking socket operation, so that a stalled server ends in an error


def cache_path(url: str) -> Path:
    """Where torch.hub caches the file of ``url``: ``$TORCH_HOME/hub/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PurePosixPath(urlparse(url).path).name


def record_path(path: Path) -> Path:
    """The file recording ``path``'s sha256 (``sha256sum`` format) after its first download."""
    return path.with_name(path.name + ".sha256")


def _digest(path: Path) -> str:
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha256.update(chunk)
    return sha256.hexdigest()


def _recorded(path: Path) -> str | None:
    record = record_path(path)
    if not record.is_file():
        return None
    text = record.read_text().split()
    return text[0] if text else None


def _write_record(path: Path, digest: str) -> None:
    record = record_path(path)
    partial = record.with_name(f"{record.name}.{uuid.uuid4().hex}.partial")
    partial.write_text(f"{digest}  {path.name}\n")
    os.replace(partial, record)


class _ChecksumMismatch(Exception):
    def __init__(self, digest: str):
        super().__init__(digest)
        self.digest = digest


def _download(url: str, dest: Path, sha256: str | None) -> str:
    """Stream ``url`` into ``dest``, replacing it only when complete and as published; its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f"{dest.name}.{uuid.uuid4().hex}.partial")
    digest, received = hashlib.sha256(), 0
    try:
        request = Request(url, headers={"User-Agent": "localkit-video-backbones"})
        with urlopen(request, timeout=_TIMEOUT_S) as response, open(partial, "wb") as out:
            announced = response.headers.get("Content-Length")
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
            # http.client ends a body cut short as if it were complete: compare with what was announced
            if announced is not None and received != int(announced):
                raise http.client.IncompleteRead(b"", int(announced) - received)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256:
            raise _ChecksumMismatch(digest.hexdigest())
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return digest.hexdigest()


def fetch(url: str, *, name: str, sha256: str | None) -> Path:
    """The cached file of ``url``, downloaded first if it is not in the cache yet.

    The file is checked against ``sha256`` when one is published. When none is, the first
    download records the file's own sha256 next to it (``<file>.sha256``) and logs a warning
    with it; later loads check the cached file against that record, and a file placed in the
    cache by hand is recorded on its first use.

    Args:
        url: the published URL.
        name: the backbone's name, for messages.
        sha256: the published sha256 of the file, or ``None`` where nobody publishes one.

    Returns:
        The path of the verified file in torch.hub's cache.

    Raises:
        WeightsError: the download failed, was cut short or did not match ``sha256`` (the cache
            is left as it was; the message names the URL and the exact path to put the file
            at), or the cached file's sha256 differs from the published or recorded one.
    """
    path = cache_path(url)
    if path.is_file():
        digest = _digest(path)
        expected = sha256 or _recorded(path)
        if expected is not None and digest != expected:
            source = "published" if sha256 else f"recorded in {record_path(path)} at its first download"
            raise WeightsError(
                f"{name}: the cached file {path} has sha256 {digest}, not the {source} {expected}; it "
                f"is damaged or another file. Delete it (and {record_path(path).name}) to download "
                f"{url} again."
            )
        if expected is None:
            _write_record(path, digest)
            log.warning("%s: %s has no published checksum; recorded its sha256 %s", name, path, digest)
        return path
    log.info("%s: downloading %s to %s", name, url, path)
    try:
        digest = _download(url, path, sha256)
    except _ChecksumMismatch as exc:
        raise WeightsError(
            f"{name}: the file downloaded from {url} has sha256 {exc.digest}, not the published "
            f"{sha256}; nothing was kept in the cache. Try again later, and report it if it persists."
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsError(
            f"{name}: cannot download {url} ({type(exc).__name__}: {exc}). Without internet, fetch "
            f"that file elsewhere and put it at {path} (torch.hub's cache, under TORCH_HOME), or "
            "pass weights=PATH."
        ) from exc
    _write_record(path, digest)
    if sha256 is None:
        log.warning(
            "%s: nobody publishes a checksum for %s; recorded the sha256 of this first download, %s, "
            "in %s, and the cached file is checked against it from now on",
            name,
            url,
            digest,
            record_path(path),
        )
    return path
