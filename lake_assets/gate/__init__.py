"""The trade gate (spec/trade_gate.yaml): `none`, a logistic threshold/model gate, or a language model over the
Ollama HTTP API; every call audited, every failure a rejection with its reason."""
