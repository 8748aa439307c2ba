"""A TCP relay on 127.0.0.1 in front of a real server that a test can cut: `cut()` ends
every connection through it and refuses new ones (a server gone, a network down) until
`restore()`. It runs in threads of its own, not on the test's event loop: the suite in
the same process calls its store synchronously on that loop, and would wait forever for a
relay that needs the loop to run."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpCut:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.open = True
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()

    def cut(self) -> None:
        with self._lock:
            self.open = False
            for sock in self._live:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            if not self.open:
                client.close()
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._live |= {client, server}
        pumps = [
            threading.Thread(target=_pump, args=(a, b), daemon=True)
            for a, b in ((client, server), (server, client))
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        with self._lock:
            self._live -= {client, server}
        client.close()
        server.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def tcp_cut(host: str, port: int) -> Iterator[TcpCut]:
    """A relay to `host:port` on a free port of 127.0.0.1 (its `port`), closed after."""
    relay = TcpCut((host, port))
    thread = threading.Thread(target=relay.serve, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.close()
        thread.join(5)
