"""The trade gate as a Dagster resource: which gate (`none`, `threshold`, `llm`) and where its spec is; the gates
themselves are `lake_assets.gate.gate` (compute, no Dagster), the Ollama client `lake_assets.llm.ollama`."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from lake_assets.gate.gate import Gate, build_gate, load_gate_spec

ENV_KIND, ENV_URL, ENV_MODEL = "QLAKE_GATE_KIND", "QLAKE_OLLAMA_URL", "QLAKE_OLLAMA_MODEL"


class GateResource(dg.ConfigurableResource):
    """`kind` overrides spec/trade_gate.yaml's; `base_url`/`model` override its llm section (e.g. per deployment).
    Unset fields fall back to the environment (QLAKE_GATE_KIND, QLAKE_OLLAMA_URL, QLAKE_OLLAMA_MODEL), then the spec.
    Bound to the `paper_trading` asset itself (its only user), so runs that select other assets need no gate."""

    kind: str | None = None
    spec_path: str | None = None
    base_url: str | None = None
    model: str | None = None

    def gate(self) -> Gate:
        spec = load_gate_spec(Path(self.spec_path) if self.spec_path else None)
        url, model = self.base_url or os.environ.get(ENV_URL), self.model or os.environ.get(ENV_MODEL)
        if spec.llm is not None and (url or model):
            llm = spec.llm.model_copy(update={k: v for k, v in (("base_url", url), ("model", model)) if v})
            spec = spec.model_copy(update={"llm": llm})
        return build_gate(spec, self.kind or os.environ.get(ENV_KIND) or None)
