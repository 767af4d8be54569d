"""Serving models over an OpenAI-compatible HTTP API: the engine (batched generation), the FastAPI app,
the SQLite request log, the detached server directories (``serves/<id>/``) and the vLLM engine."""
