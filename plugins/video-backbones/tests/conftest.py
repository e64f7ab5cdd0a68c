"""Shared inputs: tiny clips keep every test fast on two CPU cores; a local HTTP server stands in for the internet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch


@pytest.fixture
def clip() -> torch.Tensor:
    """Two RGB clips of 8 frames at 56x56: ``(2, 3, 8, 56, 56)``."""
    return torch.randn(2, 3, 8, 56, 56, generator=torch.Generator().manual_seed(0))


@dataclass
class FileServer:
    """Files served on 127.0.0.1: ``files`` maps a path to its bytes; paths in ``cut`` send half
    of the body that their Content-Length announces, then close the connection."""

    url: str
    files: dict[str, bytes]
    cut: set[str]
    requests: list[str]
    stop: Callable[[], None]


@pytest.fixture
def server():
    """A running :class:`FileServer`; ``server.stop()`` takes it down (a later request is refused)."""
    files, cut, requests = {}, set(), []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if self.path in cut else body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    running = [True]

    def stop():
        if running[0]:
            running[0] = False
            httpd.shutdown()
            httpd.server_close()
            thread.join()

    yield FileServer(f"http://127.0.0.1:{httpd.server_port}", files, cut, requests, stop)
    stop()


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty ``TORCH_HOME``; returns torch.hub's checkpoints folder inside it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home" / "hub" / "checkpoints"
