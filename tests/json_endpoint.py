"""A plain JSON HTTP endpoint on 127.0.0.1 (not OpenAI-compatible), for tests of promptfoo's `http` providers.

Paths (any method; the request's body, method and query are echoed so a test can see what was sent):

- ``/answer``: ``{"method", "query", "body" (the raw request body), "sent" (the body parsed as JSON, or null),
  "result": {"items": [{"text": "answer: " + <sent.q, query q, or the raw body>}]}}``
- ``/secure``: the same, but 401 ``{"error": "unauthorized"}`` unless ``Authorization: Bearer $HTTP_ENDPOINT_TOKEN``
- ``/text``: a plain-text (non-JSON) reply, ``"plain: " + <the raw body or query q>``
- ``/status/<code>``: that status with ``{"error": "status <code>"}``; ``/flaky/<n>``: 500 for the first n requests, then ``/answer``
- ``/stats``: ``{"hits": <requests so far>}``

Run it standalone: ``python tests/json_endpoint.py`` prints ``PORT <n>``.
"""
from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args): pass   # never log: requests carry credentials

    def _reply(self, status: int, payload, content_type: str = "application/json") -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        with self.server.lock: self.server.hits += 1; hit = self.server.hits
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        try: sent = json.loads(raw)
        except ValueError: sent = None
        path = parts.path.rstrip("/")
        q = sent.get("q") if isinstance(sent, dict) and "q" in sent else query.get("q", raw)
        echo = {"method": self.command, "query": query, "body": raw, "sent": sent, "result": {"items": [{"text": f"answer: {q}"}]}}
        if path == "/stats": return self._reply(200, {"hits": hit})
        if path == "/answer": return self._reply(200, echo)
        if path == "/secure":
            if self.headers.get("Authorization") != f"Bearer {os.environ.get('HTTP_ENDPOINT_TOKEN', '')}":
                return self._reply(401, {"error": "unauthorized"})
            return self._reply(200, echo)
        if path == "/text": return self._reply(200, f"plain: {raw or query.get('q', '')}", "text/plain")
        if path.startswith("/status/"): return self._reply(int(path.rsplit("/", 1)[1]), {"error": f"status {path.rsplit('/', 1)[1]}"})
        if path.startswith("/flaky/"):
            with self.server.lock:
                self.server.flaky += 1
                failing = self.server.flaky <= int(path.rsplit("/", 1)[1])
            return self._reply(500, {"error": "flaky"}) if failing else self._reply(200, echo)
        self._reply(404, {"error": f"no such path {path}"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock, self.hits, self.flaky = threading.Lock(), 0, 0


class JsonEndpoint:
    "The endpoint in a background thread: `with JsonEndpoint() as e: e.url` ('http://127.0.0.1:PORT')."
    def __enter__(self) -> "JsonEndpoint":
        self.server = _Server()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def hits(self) -> int: return self.server.hits


if __name__ == "__main__":
    with JsonEndpoint() as e:
        print(f"PORT {e.server.server_address[1]}", flush=True)
        threading.Event().wait()
