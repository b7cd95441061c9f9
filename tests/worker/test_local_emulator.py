"""The emulator's admin helper rides out a connection the emulator closes as a call is sent on it."""

from __future__ import annotations

import socket
import struct
import threading
from types import SimpleNamespace

from worker.local_emulator import EmulatorServer

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


def _reset(conn: socket.socket) -> None:
    # SO_LINGER 0: close() sends a reset, as a server dropping an idle keep-alive connection may.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_a_call_reset_on_a_kept_alive_connection_is_sent_again_on_a_new_one():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connections = []

    def serve() -> None:
        first, _ = listener.accept()
        connections.append(first)
        _read_request(first)
        first.sendall(ANSWER)
        _read_request(first)
        _reset(first)
        second, _ = listener.accept()
        connections.append(second)
        _read_request(second)
        second.sendall(ANSWER)
        second.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    # No process behind it: only the admin calls are under test.
    emulator = EmulatorServer(f"http://127.0.0.1:{port}", "org", "key",
                              child=SimpleNamespace(popen=None, log_path=None))  # type: ignore[arg-type]
    try:
        assert emulator.configure() == {}
        assert emulator.configure() == {}, "the reset call went again, on a new connection"
    finally:
        listener.close()
    server.join(5)
    assert len(connections) == 2
