"""Clients of language-model servers (no Dagster): `ollama.OllamaClient` speaks the Ollama HTTP API."""
