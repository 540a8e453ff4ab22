"""A loopback OpenAI-compatible chat server, for tests, benchmarks and trying a configuration.

:class:`LoopbackServer` answers ``POST /v1/chat/completions`` on 127.0.0.1 at a free port, from
threads (HTTP/1.1 keep-alive, so a client reuses its connections), with whatever
``respond(n, body)`` returns for the ``n``-th request (0-based): a :class:`Reply` (status,
JSON payload or raw bytes, extra headers) or a ``(status, payload)`` pair. It records every
request body and when it arrived, and the most requests it had in flight at once. It can stop
by itself after ``max_requests`` requests or ``lifetime`` seconds (later requests are refused).

``python -m andlib.text.loopback [--port N]`` serves instant replies until interrupted, in a
process of its own (the benchmark uses it that way, so that the server does not share the
client's interpreter lock): it prints ``listening on <url>`` once ready.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: a status, a JSON payload (or raw bytes) and extra headers."""

    status: int = 200
    body: dict | bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def completion(content: str | None, finish: str = "stop") -> dict:
    """A ``chat.completion`` payload with one choice."""
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 0,
        "model": "loopback",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
    }


def question(body: dict) -> str:
    """The last turn's text (the first text part when the content is a list of parts)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return next((p.get("text", "") for p in content if isinstance(p, dict)), "")


def instant(n: int, body: dict) -> Reply:
    """The default reply: names the end of the last turn, so replies differ per request."""
    return Reply(200, completion("summary of: " + question(body)[-40:]))


Respond = Callable[[int, dict], "Reply | tuple[int, Any]"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many clients connecting at once are queued, not dropped


class LoopbackServer:
    """``POST /v1/chat/completions`` on 127.0.0.1, answered by ``respond(n, body)``.

    ``delay`` seconds are slept before each answer. ``bodies``, ``times`` (``time.monotonic``
    at arrival), ``count``, ``max_inflight``; :meth:`gap` between two requests.
    """

    def __init__(
        self,
        respond: Respond = instant,
        delay: float = 0.0,
        max_requests: int | None = None,
        lifetime: float | None = None,
        port: int = 0,
        record: bool = True,
    ):
        self.respond = respond
        self.delay = delay
        self.max_requests = max_requests
        self.deadline = None if lifetime is None else time.monotonic() + lifetime
        self.record = record
        self.bodies: list[dict] = []
        self.times: list[float] = []
        self.n = 0
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stall

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server.lock:
                    if server._closed():
                        self.close_connection = True  # gone: the client sees a dropped line
                        return
                    n = server.n
                    server.n += 1
                    if server.record:
                        server.bodies.append(body)
                        server.times.append(time.monotonic())
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    if self.path != "/v1/chat/completions":
                        reply = Reply(404, {"error": {"message": f"no route {self.path}"}})
                    else:
                        if server.delay:
                            time.sleep(server.delay)
                        got = server.respond(n, body)
                        reply = got if isinstance(got, Reply) else Reply(got[0], got[1])
                    data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
                    data = data.encode() if isinstance(data, str) else data
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with server.lock:
                        server.inflight -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self._shut = False

    def _closed(self) -> bool:
        """Past ``max_requests`` or ``lifetime``: the listening socket is closed too."""
        over = (self.max_requests is not None and self.n >= self.max_requests) or (
            self.deadline is not None and time.monotonic() > self.deadline
        )
        if over and not self._shut:
            self._shut = True
            threading.Thread(target=self._stop, daemon=True).start()
        return over

    def _stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def count(self) -> int:
        return self.n

    def gap(self, i: int) -> float:
        """Seconds between request ``i - 1`` and request ``i``."""
        return self.times[i] - self.times[i - 1]

    def close(self) -> None:
        with self.lock:
            if self._shut:
                return
            self._shut = True
        self._stop()
        self.thread.join(timeout=5)


@contextmanager
def loopback_process(python: str = sys.executable) -> Iterator[str]:
    """A :class:`LoopbackServer` of instant replies in a child process; yields its URL."""
    proc = subprocess.Popen(
        [python, "-m", "andlib.text.loopback"], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the loopback server did not start: {line!r}")
        yield line.split("listening on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = LoopbackServer(port=args.port, record=False)
    print(f"listening on {server.url}", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
