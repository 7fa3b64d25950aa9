"""The demo order service under uvicorn in a thread, for the tests that meet it (the service's own, the actions')."""

import socket
import threading
import time

import httpx
import uvicorn

from chatbot.demo_orders import create_app


class OrderService:
    """`create_app` under uvicorn in a thread (tests/app_server.py does the same for the whole app, whose imports
    cost far more than this file may take); `client` talks to it."""

    def __init__(self, db_path, orders_path, token=""):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(
            create_app(db_path, orders_path, token), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            assert time.time() < deadline, "the order service did not start within 10 s"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
