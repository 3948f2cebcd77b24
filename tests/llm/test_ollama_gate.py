"""The Ollama client and the trade gates against a local stub of the Ollama API (127.0.0.1; no network): good
answers, garbage, schema violations, timeouts, 500s; every failure closes the gate with its reason."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ollama_stub import OllamaStub  # noqa: E402

from lake_assets.gate.gate import (  # noqa: E402
    GateAnswer,
    GateRequest,
    GateSpec,
    LlmGate,
    LlmSpec,
    NoGate,
    ThresholdGate,
    ThresholdSpec,
    build_gate,
    load_gate_spec,
    render_prompt,
)
from lake_assets.llm.ollama import OllamaClient, parse_json_answer  # noqa: E402
from lake_assets.specs import SpecError  # noqa: E402

REQ = GateRequest("json.e3_perp_flow", "BTCUSDT-PERP", "long", datetime(2026, 3, 2, 10, 5, tzinfo=UTC), 61234.5,
                  {"body_atr": 1.2, "volume_z": 2.0, "depth_imbalance": 0.4, "spread_bps": 1.1},
                  ({"condition": "body_atr > body_min", "value": 1.2, "threshold": 0.8},))  # fmt: skip


def llm_gate(url: str, endpoint: str = "generate", timeout_s: float = 0.5, retries: int = 1) -> LlmGate:
    spec = load_gate_spec().llm
    assert spec is not None
    spec = spec.model_copy(update={"base_url": url, "endpoint": endpoint, "timeout_s": timeout_s, "retries": retries,
                                   "deadline_s": 5.0})  # fmt: skip
    gate = LlmGate(spec)
    gate.client.backoff_s = 0.0
    return gate


@pytest.mark.parametrize("endpoint", ["generate", "chat"])
def test_a_good_answer_passes_and_is_audited(endpoint: str) -> None:
    with OllamaStub("good") as stub:
        d = llm_gate(stub.url, endpoint).decide(REQ)
    assert d.allowed and d.decision == "take" and d.confidence == 0.9 and d.rationale
    assert d.error is None and d.attempts == 1 and d.latency_ms > 0
    assert "BTCUSDT-PERP" in (d.prompt or "") and '"response"' in (d.raw_response or "") or endpoint == "chat"
    [req] = stub.requests
    assert req["path"] == f"/api/{endpoint}" and req["stream"] is False and req["model"] == "llama3.2:1b"
    assert req["format"]["properties"]["decision"]["enum"] == ["take", "skip"]  # the answer schema is sent
    if endpoint == "chat":
        assert req["messages"][-1]["content"] == d.prompt


@pytest.mark.parametrize(("mode", "reason"), [
    ("skip", "the model said skip"), ("low", "min_confidence"), ("garbage", "malformed answer"),
    ("extra", "malformed answer"), ("body", "malformed body"),
])  # fmt: skip
def test_bad_or_negative_answers_fail_closed_with_the_reason(mode: str, reason: str) -> None:
    with OllamaStub(mode) as stub:
        d = llm_gate(stub.url).decide(REQ)
    assert not d.allowed and reason in d.reason
    assert len(stub.requests) == 1  # an answer, even a bad one, is not retried
    assert d.raw_response is not None and d.prompt


def test_500_then_good_is_retried_and_500s_fail_closed() -> None:
    with OllamaStub("good") as stub:
        stub.script.extend(["error"])
        d = llm_gate(stub.url).decide(REQ)
        assert d.allowed and d.attempts == 2
        stub.script.extend(["error", "error"])
        d = llm_gate(stub.url).decide(REQ)
    assert not d.allowed and d.attempts == 2 and "HTTP 500" in d.reason and d.error


def test_a_late_answer_fails_closed() -> None:
    with OllamaStub("slow", slow_s=1.0) as stub:
        d = llm_gate(stub.url, timeout_s=0.2, retries=0).decide(REQ)
    assert not d.allowed and "timeout" in d.reason and d.latency_ms < 900


def test_no_server_fails_closed() -> None:
    with OllamaStub() as stub:
        url = stub.url
    d = llm_gate(url, timeout_s=0.2, retries=0).decide(REQ)
    assert not d.allowed and d.error and ("connection" in d.reason or "timeout" in d.reason)


def test_the_answer_is_parsed_never_evaluated() -> None:
    bad, problem = parse_json_answer('__import__("os").system("echo hi")', GateAnswer)
    assert bad is None and problem
    ok, _ = parse_json_answer('{"decision": "take", "confidence": 1.0, "rationale": ""}', GateAnswer)
    assert ok is not None and ok.decision == "take"
    nan, problem = parse_json_answer('{"decision": "take", "confidence": NaN}', GateAnswer)
    assert nan is None


def test_prompt_placeholders_are_plain_substitution() -> None:
    text = render_prompt("{{instrument}} {{side}} {{ts}} {x.__class__} {{features}}", REQ)
    assert text.startswith("BTCUSDT-PERP long 2026-03-02T10:05:00+00:00 {x.__class__} {")
    with pytest.raises(ValueError, match="unknown placeholder"):
        LlmSpec(prompt="{{__class__}}")


def test_threshold_gate_is_a_logistic_score_and_fails_closed_on_missing_features() -> None:
    gate = ThresholdGate(ThresholdSpec(bias=-1.0, weights={"depth_imbalance_signed": 5.0}, min_probability=0.5))
    assert gate.decide(REQ).allowed  # -1 + 5 * 0.4 = 1 -> p 0.73
    short = GateRequest(**{**REQ.__dict__, "side": "short"})
    assert not gate.decide(short).allowed  # -1 - 2 = -3 -> p 0.05
    missing = GateRequest(**{**REQ.__dict__, "features": {"depth_imbalance": None}})
    d = gate.decide(missing)
    assert not d.allowed and "missing feature" in d.reason


def test_gate_spec_and_kinds(tmp_path: Path) -> None:
    spec = load_gate_spec()
    assert isinstance(build_gate(spec), NoGate) and isinstance(build_gate(spec, "threshold"), ThresholdGate)
    assert isinstance(build_gate(spec, "llm"), LlmGate)
    with pytest.raises(ValueError, match="unknown gate kind"):
        build_gate(GateSpec(), "oracle")
    bad = tmp_path / "trade_gate.yaml"
    bad.write_text("kind: llm\nllm: {prompt: hi, timeout_s: -1}\n")
    with pytest.raises(SpecError) as err:
        load_gate_spec(bad)
    assert "trade_gate.yaml" in str(err.value) and "llm.timeout_s" in str(err.value)


def test_client_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        OllamaClient(base_url="file:///etc/passwd")


def test_gate_resource_builds_the_configured_gate() -> None:
    from resources import GateResource

    assert GateResource().gate().name == "none"
    gate = GateResource(kind="llm", base_url="http://127.0.0.1:9", model="tiny").gate()
    assert isinstance(gate, LlmGate) and gate.client.base_url == "http://127.0.0.1:9" and gate.client.model == "tiny"
