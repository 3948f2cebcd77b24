"""A small client of the Ollama HTTP API (`POST /api/generate` or `/api/chat`, non-streaming), stdlib only.

Every call returns an `OllamaReply` (never raises for what the server or the network did): the text the model
answered, the raw HTTP body, the latency, the attempts and an error string when it failed. Timeouts, connection
errors and 5xx answers are retried (`retries` more attempts, `backoff_s` doubling between them) within one overall
`deadline_s`; 4xx answers and bodies that are not Ollama's JSON are not. The reply is text: parsing the model's
answer into a schema is the caller's business (`parse_json_answer` helps, with pydantic; nothing is evaluated).
Structured output: `json_schema` is sent as Ollama's `format` (a JSON schema the server constrains the answer to).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

MAX_BODY_BYTES = 1_000_000  # an answer longer than this is cut and reported as an error
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class OllamaReply:
    text: str | None  # the model's answer (generate: `response`; chat: `message.content`); None on failure
    raw: str  # the raw HTTP body of the last attempt (cut to MAX_BODY_BYTES), "" when there was none
    latency_ms: float  # wall time of the whole call, retries included
    attempts: int
    error: str | None = None  # why there is no answer (timeout, HTTP status, malformed body, ...)
    status: int | None = None  # HTTP status of the last attempt

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass
class OllamaClient:
    base_url: str = "http://127.0.0.1:11434"
    model: str = "llama3.2:1b"
    endpoint: Literal["generate", "chat"] = "generate"
    timeout_s: float = 10.0  # per attempt
    deadline_s: float = 30.0  # whole call, retries included
    retries: int = 1
    backoff_s: float = 0.2
    options: Mapping[str, Any] = field(default_factory=lambda: {"temperature": 0.0})
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"ollama base_url must be http(s)://..., got {self.base_url!r}")
        if self.endpoint not in ("generate", "chat"):
            raise ValueError(f"ollama endpoint must be 'generate' or 'chat', got {self.endpoint!r}")

    def request_body(self, prompt: str, json_schema: Mapping[str, Any] | None = None,
                     system: str | None = None) -> dict[str, Any]:  # fmt: skip
        body: dict[str, Any] = {"model": self.model, "stream": False, "options": dict(self.options)}
        if json_schema is not None:
            body["format"] = dict(json_schema)
        if self.endpoint == "generate":
            body["prompt"] = prompt
            if system:
                body["system"] = system
        else:
            body["messages"] = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
        return body

    def ask(self, prompt: str, json_schema: Mapping[str, Any] | None = None, system: str | None = None) -> OllamaReply:
        url = f"{self.base_url.rstrip('/')}/api/{self.endpoint}"
        payload = json.dumps(self.request_body(prompt, json_schema, system)).encode()
        t0 = time.perf_counter()
        raw, status, attempts = "", None, 0
        error: str | None = "no attempt"
        for attempt in range(self.retries + 1):
            left = self.deadline_s - (time.perf_counter() - t0)
            if left <= 0:
                error = f"deadline of {self.deadline_s}s passed after {attempts} attempt(s); last error: {error}"
                break
            attempts = attempt + 1
            raw, error, status, retryable = self._post(url, payload, min(self.timeout_s, left))
            if error is None:
                text, error = _answer_text(raw, self.endpoint)
                if error is None:
                    return OllamaReply(text, raw, (time.perf_counter() - t0) * 1e3, attempts, None, status)
                break  # a malformed body is not retried: the server answered
            if not retryable:
                break
            if attempt < self.retries:
                self.sleep(min(self.backoff_s * 2**attempt, max(0.0, left)))
        return OllamaReply(None, raw, (time.perf_counter() - t0) * 1e3, attempts, error, status)

    def _post(self, url: str, payload: bytes, timeout: float) -> tuple[str, str | None, int | None, bool]:
        """(raw body, error, status, retryable)."""
        req = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http(s) checked above)
                body = resp.read(MAX_BODY_BYTES + 1)
                raw = body[:MAX_BODY_BYTES].decode("utf-8", "replace")
                if len(body) > MAX_BODY_BYTES:
                    return raw, f"answer longer than {MAX_BODY_BYTES} bytes", resp.status, False
                return raw, None, resp.status, False
        except urllib.error.HTTPError as exc:
            raw = exc.read(MAX_BODY_BYTES).decode("utf-8", "replace") if exc.fp else ""
            return raw, f"HTTP {exc.code}: {raw[:200]}", exc.code, exc.code >= 500
        except TimeoutError as exc:
            return "", f"timeout after {timeout:.2f}s ({exc})", None, True
        except urllib.error.URLError as exc:
            timed_out = isinstance(exc.reason, TimeoutError)
            what = f"timeout after {timeout:.2f}s" if timed_out else f"connection error: {exc.reason}"
            return "", what, None, True
        except (ConnectionError, OSError) as exc:
            return "", f"connection error: {exc}", None, True


def _answer_text(raw: str, endpoint: str) -> tuple[str | None, str | None]:
    """The model's text from Ollama's non-streaming body, or why it is not there."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"malformed body (not JSON): {exc}"
    if not isinstance(obj, dict):
        return None, "malformed body: not a JSON object"
    if obj.get("error"):
        return None, f"server error: {str(obj['error'])[:200]}"
    if endpoint == "generate":
        text = obj.get("response")
    else:
        msg = obj.get("message")
        text = msg.get("content") if isinstance(msg, dict) else None
    if not isinstance(text, str):
        return None, f"malformed body: no {'response' if endpoint == 'generate' else 'message.content'} text"
    return text, None


def parse_json_answer(text: str, model: type[_M]) -> tuple[_M | None, str | None]:
    """The model's answer as a pydantic model (strict JSON, validated; never evaluated), or why it is not one."""
    try:
        return model.model_validate_json(text.strip()), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "<answer>"
        return None, f"answer does not match the schema at {where}: {first.get('msg')}"
