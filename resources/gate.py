"""The trade gate as a Dagster resource: which gate (`none`, `threshold`, `llm`) and where its spec is; the gates
themselves are `lake_assets.gate.gate` (compute, no Dagster), the Ollama client `lake_assets.llm.ollama`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from lake_assets.gate.gate import Gate, build_gate, load_gate_spec


class GateResource(dg.ConfigurableResource):
    """`kind` overrides spec/trade_gate.yaml's; `base_url`/`model` override its llm section (e.g. per deployment)."""

    kind: str | None = None
    spec_path: str | None = None
    base_url: str | None = None
    model: str | None = None

    def gate(self) -> Gate:
        spec = load_gate_spec(Path(self.spec_path) if self.spec_path else None)
        if spec.llm is not None and (self.base_url or self.model):
            llm = spec.llm.model_copy(update={k: v for k, v in (("base_url", self.base_url), ("model", self.model))
                                              if v})  # fmt: skip
            spec = spec.model_copy(update={"llm": llm})
        return build_gate(spec, self.kind)
