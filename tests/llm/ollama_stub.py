"""A small local HTTP server imitating the Ollama API (`POST /api/generate`, `/api/chat`, non-streaming) on
127.0.0.1, for tests and the paper-trading benchmark: no network, no model. Each request takes the next behaviour
from `script` (or `default` when the script is empty):

  good      a valid answer: {"decision": "take", "confidence": 0.9, "rationale": ...}
  skip      a valid "skip" answer
  low       "take" with confidence 0.2
  garbage   the model's text is not JSON
  extra     JSON with a key the schema does not allow
  body      the HTTP body itself is not JSON
  error     HTTP 500 (Ollama's {"error": ...})
  slow      sleeps `slow_s` before a good answer (longer than the client's timeout)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWERS = {
    "good": {"decision": "take", "confidence": 0.9, "rationale": "book and flow agree"},
    "skip": {"decision": "skip", "confidence": 0.8, "rationale": "premium stretched"},
    "low": {"decision": "take", "confidence": 0.2, "rationale": "not sure"},
    "extra": {"decision": "take", "confidence": 0.9, "rationale": "x", "size": 10},
}


class OllamaStub:
    def __init__(self, default: str = "good", slow_s: float = 1.0) -> None:
        self.default, self.slow_s = default, slow_s
        self.script: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append({"path": self.path, **body})
                mode = stub.script.popleft() if stub.script else stub.default
                if mode == "slow":
                    time.sleep(stub.slow_s)
                    mode = "good"
                if mode == "error":
                    self._send(500, json.dumps({"error": "model crashed"}).encode())
                    return
                if mode == "body":
                    self._send(200, b"<html>not json</html>")
                    return
                text = "I think you should buy!" if mode == "garbage" else json.dumps(ANSWERS[mode])
                out: dict[str, Any] = {"model": body.get("model"), "done": True}
                if self.path.endswith("/api/chat"):
                    out["message"] = {"role": "assistant", "content": text}
                else:
                    out["response"] = text
                self._send(200, json.dumps(out).encode())

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> OllamaStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
