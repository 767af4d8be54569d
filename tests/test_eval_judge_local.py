"""The judge through real litellm HTTP calls to a local model: the bundled SmolLM2 behind an OpenAI-style endpoint.

No mock anywhere: litellm builds the request, sends it over loopback, and parses the reply. A 135M model
is a poor judge, so its verdicts may well be 'unparsed'; what is checked is the whole path and that a
bad reply never breaks anything, and that the key never reaches the eval directory.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from evalkit import make_eval

from workbench.eval.judging import judge_eval, load_verdicts
from workbench.llm import LLM

KEY = "sk-local-test-key-0a1b2c3d"


def serve_bundled_model(model_dir):
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 answering with the bundled model (greedy)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    lock = threading.Lock()
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            ids = tokenizer.apply_chat_template(
                body["messages"], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with lock, torch.no_grad():
                out = model.generate(**ids, max_new_tokens=min(int(body.get("max_tokens") or 48), 48), do_sample=False)
            new = out[0, ids["input_ids"].shape[1] :]
            text = tokenizer.decode(new, skip_special_tokens=True)
            reply = {
                "id": "local-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": int(ids["input_ids"].shape[1]),
                    "completion_tokens": int(new.shape[0]),
                    "total_tokens": int(ids["input_ids"].shape[1] + new.shape[0]),
                },
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.mark.slow
def test_judge_through_litellm_against_a_local_model(tmp_path, bundled_dir, monkeypatch):
    server, seen = serve_bundled_model(bundled_dir)
    try:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        ev = make_eval(tmp_path)
        monkeypatch.setenv("WORKBENCH_LLM_API_BASE", f"http://127.0.0.1:{server.server_address[1]}/v1")
        llm = LLM("openai/smollm2-local", cache_dir=None, max_tokens=48)
        verdicts = judge_eval(ev, llm, models=["base", "run/adapter"], ids=["0", "5"], workers=1)
    finally:
        server.shutdown()
    assert len(verdicts) == 4 and len(seen) == 4
    assert all(s["path"].endswith("/chat/completions") and s["auth"] == f"Bearer {KEY}" for s in seen)
    assert all(v.raw or v.unparsed for v in verdicts)  # a reply came back and was read, or said unreadable
    assert llm.usage.total_tokens > 0 and llm.usage.calls == 4
    stored = (ev.path / "judge.jsonl").read_text()
    assert KEY not in stored and len(load_verdicts(ev).single) == 4
