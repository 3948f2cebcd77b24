"""Trade gates: decide whether a strategy's entry may go on to risk, with an audit record per call.

A gate sees a `GateRequest` (strategy, instrument, side, bar time, price, the entry's reasons and features) and
returns a `GateDecision` (allowed, decision, confidence, rationale, prompt, raw response, latency, error). Gates fail
closed: whatever goes wrong (missing inputs, a late, failed or malformed answer) is `allowed=False` with the reason.

The LLM gate's prompt is the spec's template with `{{name}}` placeholders replaced by the request's values (plain
substitution of known names; no format strings, no expressions), and its answer is parsed with pydantic against
`GateAnswer` (extra keys refused); nothing a model says is ever evaluated.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lake_assets.llm.ollama import OllamaClient, parse_json_answer
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, StrictModel, load_spec_file

GATE_KINDS = ("none", "threshold", "llm")
MAX_PROMPT_CHARS = 8_000
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
PLACEHOLDERS = frozenset({"strategy", "instrument", "side", "ts", "price", "reasons", "features"})


# --- spec ---------------------------------------------------------------------------------------------------------


class ThresholdSpec(StrictModel):
    bias: float = 0.0
    weights: dict[str, float] = Field(default_factory=dict, max_length=64)
    min_probability: float = Field(default=0.5, ge=0.0, le=1.0)


class LlmSpec(StrictModel):
    base_url: str = Field(default="http://127.0.0.1:11434", pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+/?$")
    endpoint: Literal["generate", "chat"] = "generate"
    model: str = Field(default="llama3.2:1b", min_length=1, max_length=128)
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    deadline_s: float = Field(default=12.0, gt=0, le=600)
    retries: int = Field(default=1, ge=0, le=5)
    min_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    system: str = Field(default="", max_length=4_000)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)

    @model_validator(mode="after")
    def _known_placeholders(self) -> LlmSpec:
        unknown = sorted(set(_PLACEHOLDER.findall(self.prompt)) - PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholder(s) {unknown} in prompt; known: {sorted(PLACEHOLDERS)}")
        return self


class GateSpec(StrictModel):
    kind: Literal["none", "threshold", "llm"] = "none"
    threshold: ThresholdSpec = ThresholdSpec()
    llm: LlmSpec | None = None


def load_gate_spec(path: Path | None = None) -> GateSpec:
    """Read and validate spec/trade_gate.yaml; a problem is a SpecError naming file, key and problem."""
    path = path or spec_dir() / "trade_gate.yaml"
    spec = load_spec_file(GateSpec, path, "`kind`")
    if spec.kind == "llm" and spec.llm is None:
        raise SpecError(path, "llm", "kind is llm but there is no `llm` section")
    return spec


# --- requests, answers, decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRequest:
    strategy: str
    instrument: str
    side: str  # long | short
    ts: datetime
    price: float
    features: Mapping[str, float | None] = field(default_factory=dict)
    reasons: tuple[Mapping[str, Any], ...] = ()


class GateAnswer(BaseModel):
    """The JSON a language model must answer with."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    decision: Literal["take", "skip"]
    confidence: float = Field(ge=0.0, le=1.0)
    rationale: str = Field(default="", max_length=2_000)


@dataclass(frozen=True)
class GateDecision:
    gate: str
    allowed: bool
    decision: str  # take | skip | error
    confidence: float | None
    reason: str  # why allowed or not (the rejection reason on failure)
    rationale: str | None = None
    prompt: str | None = None
    raw_response: str | None = None
    latency_ms: float = 0.0
    error: str | None = None
    attempts: int = 0

    def record(self) -> dict[str, Any]:
        return {"gate": self.gate, "allowed": self.allowed, "decision": self.decision, "confidence": self.confidence,
                "reason": self.reason, "rationale": self.rationale, "prompt": self.prompt,
                "raw_response": self.raw_response, "latency_ms": self.latency_ms, "error": self.error,
                "attempts": self.attempts}  # fmt: skip


class Gate(Protocol):
    name: str

    def decide(self, request: GateRequest) -> GateDecision: ...


# --- gates ---------------------------------------------------------------------------------------------------------


class NoGate:
    name = "none"

    def decide(self, request: GateRequest) -> GateDecision:
        return GateDecision("none", True, "take", None, "no gate")


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def signed_features(request: GateRequest) -> dict[str, float | None]:
    """The request's features plus `<name>_signed` (the value times +1 long / -1 short) for direction-aware scores."""
    sign = 1.0 if request.side == "long" else -1.0
    out: dict[str, float | None] = {k: _finite(v) for k, v in request.features.items()}
    out.update({f"{k}_signed": (v * sign if v is not None else None) for k, v in list(out.items())})
    return out


class ThresholdGate:
    """Logistic score of the features; a missing feature is a rejection (fail closed)."""

    name = "threshold"

    def __init__(self, spec: ThresholdSpec) -> None:
        self.spec = spec

    def decide(self, request: GateRequest) -> GateDecision:
        t0 = time.perf_counter()
        x = signed_features(request)
        missing = sorted(k for k in self.spec.weights if x.get(k) is None)
        if missing:
            return GateDecision(self.name, False, "error", None, f"missing feature(s) {', '.join(missing)}",
                                latency_ms=(time.perf_counter() - t0) * 1e3, error="missing features")  # fmt: skip
        z = self.spec.bias + sum(w * float(x[k] or 0.0) for k, w in self.spec.weights.items())
        p = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
        ok = p >= self.spec.min_probability
        reason = f"p={p:.3f} {'>=' if ok else '<'} min_probability {self.spec.min_probability}"
        return GateDecision(self.name, ok, "take" if ok else "skip", p, reason,
                            latency_ms=(time.perf_counter() - t0) * 1e3)  # fmt: skip


def render_prompt(template: str, request: GateRequest) -> str:
    """The template with its `{{name}}` placeholders replaced (known names only; values as plain text)."""
    values = {
        "strategy": request.strategy,
        "instrument": request.instrument,
        "side": request.side,
        "ts": request.ts.isoformat(),
        "price": f"{request.price:.8g}",
        "features": json.dumps({k: _finite(v) for k, v in request.features.items()}, sort_keys=True),
        "reasons": json.dumps([dict(r) for r in request.reasons], default=str),
    }
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)[: MAX_PROMPT_CHARS * 2]


class LlmGate:
    """Asks a model (Ollama API) for {decision, confidence, rationale}; anything but a valid, confident `take` in
    time is a rejection with the reason."""

    name = "llm"

    def __init__(self, spec: LlmSpec, client: OllamaClient | None = None) -> None:
        self.spec = spec
        self.client = client or OllamaClient(
            base_url=spec.base_url, model=spec.model, endpoint=spec.endpoint, timeout_s=spec.timeout_s,
            deadline_s=spec.deadline_s, retries=spec.retries,
        )  # fmt: skip

    def decide(self, request: GateRequest) -> GateDecision:
        prompt = render_prompt(self.spec.prompt, request)
        reply = self.client.ask(prompt, GateAnswer.model_json_schema(), self.spec.system or None)

        def base(d: GateDecision) -> GateDecision:
            return replace(d, prompt=prompt, raw_response=reply.raw, latency_ms=reply.latency_ms,
                           attempts=reply.attempts)  # fmt: skip

        if not reply.ok or reply.text is None:
            return base(GateDecision(self.name, False, "error", None, f"no answer: {reply.error}", error=reply.error))
        answer, problem = parse_json_answer(reply.text, GateAnswer)
        if answer is None:
            return base(GateDecision(self.name, False, "error", None, f"malformed answer: {problem}", error=problem))
        if answer.decision != "take":
            return base(GateDecision(self.name, False, "skip", answer.confidence, "the model said skip",
                                     rationale=answer.rationale))  # fmt: skip
        if answer.confidence < self.spec.min_confidence:
            return base(GateDecision(self.name, False, "take", answer.confidence,
                                     f"confidence {answer.confidence:.2f} < min_confidence {self.spec.min_confidence}",
                                     rationale=answer.rationale))  # fmt: skip
        return base(GateDecision(self.name, True, "take", answer.confidence, "the model said take",
                                 rationale=answer.rationale))  # fmt: skip


def build_gate(spec: GateSpec, kind: str | None = None, client: OllamaClient | None = None) -> Gate:
    """The gate `kind` (default: the spec's) configured from the spec."""
    kind = kind or spec.kind
    if kind == "none":
        return NoGate()
    if kind == "threshold":
        return ThresholdGate(spec.threshold)
    if kind == "llm":
        if spec.llm is None:
            raise ValueError("gate kind llm needs an `llm` section in spec/trade_gate.yaml")
        return LlmGate(spec.llm, client)
    raise ValueError(f"unknown gate kind {kind!r}; expected one of {list(GATE_KINDS)}")
