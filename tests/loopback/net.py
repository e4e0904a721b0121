"""Network odds and ends: a port nobody listens on, and a server that never speaks."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

from ._http import HOST
from .lifecycle import Running


def closed_port() -> int:
    """A 127.0.0.1 port with no listener (bound then released: connects are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class SilentServer(Running):
    """Accepts TCP connections and never sends a byte (an SMTP greeting or HTTP response
    that never comes), for connect-succeeds-then-times-out tests. Connections are held
    until stop()."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: list[socket.socket] = []
        self.accepted = 0

    def start(self) -> Self:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((HOST, 0))
        self._sock.listen(128)
        self._thread = threading.Thread(target=self._accept, daemon=True, name="SilentServer")
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # listening socket closed by stop()
            self._conns.append(conn)
            self.accepted += 1

    @property
    def port(self) -> int:
        assert self._sock is not None, "SilentServer not started"
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        if self._sock is None:
            return
        # shutdown() wakes the accept() blocked in the thread; close() alone may not.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        self._sock = self._thread = None


__all__ = ["SilentServer", "closed_port"]
