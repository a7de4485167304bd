"""The review app served by uvicorn: in the foreground (`datman-flow review`) or in a thread
that starts and stops with its owner (the UI demo, tests). `server.app.state.review` is the
app's ReviewContext (its caches, for tests and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from datman_flow.review.app import create_app

START_TIMEOUT = 10.0  # seconds for the server to start listening, and to stop


def serve(data_dir: Path, host: str, port: int, https_only: bool = False) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM)."""
    uvicorn.run(create_app(data_dir, https_only=https_only), host=host, port=port, log_level="info",
                timeout_keep_alive=5)


class ReviewServer:
    """`with ReviewServer(data_dir) as server:` the app on `server.url` (port 0: a free port)."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.data_dir, self.host, self.port = Path(data_dir), host, port
        self.app = create_app(self.data_dir)
        config = uvicorn.Config(self.app, log_level="warning", timeout_keep_alive=5)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ReviewServer:
        self._socket = socket.create_server((self.host, self.port))  # OSError (port in use) here, in the caller
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="datman-review", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"the review app did not start on {self.url} within {START_TIMEOUT:.0f} s")
        return self

    def wait_warm(self, timeout: float = 120.0) -> bool:
        """Wait until the app has read its tables once (what its first page would wait for);
        whether it did within `timeout` seconds (benchmarks time the pages after this)."""
        return self.app.state.review.warmed.wait(timeout)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
