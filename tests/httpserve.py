"""A real HTTP server on 127.0.0.1 (in a thread) serving in-memory files, for the fetch tests.

It honours Range requests, and can be told to fail the next request of a path with a status code
(``fail[path] = [500, ...]``) or to cut the next transfer short after n bytes (``truncate[path]``).
Every request is logged as (path, Range header or None, status).
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Served:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, list[int]] = {}
        self.truncate: dict[str, list[int]] = {}
        self.log: list[tuple[str, str | None, int]] = []
        self.url = ""


def _handler(state: Served):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            if self.path not in state.files:
                return self._status(404, rng)
            if state.fail.get(self.path):
                return self._status(state.fail[self.path].pop(0), rng)
            data, start, code = state.files[self.path], 0, 200
            if rng:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    state.log.append((self.path, rng, 416))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = 206
            body = data[start:]
            state.log.append((self.path, rng, code))
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            if code == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            cut = state.truncate.get(self.path)
            if cut:
                self.wfile.write(body[: cut.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def _status(self, code, rng):
            state.log.append((self.path, rng, code))  # (logged before the client can see it)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextlib.contextmanager
def serve():
    state = Served()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
