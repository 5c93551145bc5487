"""A clinic's system receiving webhooks, for tests: an HTTP server on loopback that records every
request it gets (path, headers, body, when) and answers with the statuses it is given, in turn,
then 204."""

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic()


class WebhookReceiver:
    """`answers`: the HTTP statuses of the first requests (then 204). `on_request(n)` is called
    with the number of requests received so far, after recording one and before answering it
    (it may block, or stop the sender)."""

    def __init__(self, *, answers=(), on_request=None):
        self.requests: list[Received] = []
        self.answers = list(answers)
        self.on_request = on_request
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's hook
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._arrived:
                    receiver.requests.append(Received(self.path, headers, body, time.monotonic()))
                    count = len(receiver.requests)
                    status = receiver.answers.pop(0) if receiver.answers else 204
                    receiver._arrived.notify_all()
                if receiver.on_request is not None:
                    receiver.on_request(count)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender is gone (killed while it waited)
                    pass

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)
