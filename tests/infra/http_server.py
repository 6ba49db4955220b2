"""Running an ASGI app under a real uvicorn server on loopback, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from mmr.devcluster.procs import free_port, free_ports

__all__ = ["ServerThread", "free_port", "free_ports"]


class ServerThread:
    """`with ServerThread(app) as server: httpx.get(server.url + "/healthz")`."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        # Bound here and handed to uvicorn, not picked and bound later: between the two another
        # test process (xdist) or this test's own metrics listener could take the port.
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", port or 0))
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        # proxy_headers off as in `mmr serve`: X-Forwarded-For is mmr's to judge (trusted proxies),
        # not uvicorn's, which would otherwise rewrite the client address for loopback peers.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server failed to start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()
