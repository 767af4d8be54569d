"""The serving engine on the tiny random model with real random LoRA adapters: batching, adapters, streaming, stops."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.shipkit import fake_run
from workbench.errors import ServeError
from workbench.eval.candidates import resolve_models
from workbench.eval.store import GenerationSettings
from workbench.serve.engine import REGROUP_S, Engine, _Row, load_engine

PROMPTS = [
    "How do I reset my password?",
    "My order never arrived, what now?",
    "Can I change the shipping address after paying?",
    "hi",
]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir) -> tuple[Path, str]:
    ws = tmp_path_factory.mktemp("serve-ws")
    run = fake_run(ws, tiny_model_dir, steps=(4, 8), best=4)
    return ws, run.name


@pytest.fixture(scope="module")
def engine(served):
    ws, _ = served
    eng = load_engine(ws, ["base", "demo/final", "demo/ckpt-8"], max_batch=8, window_s=0.0)
    yield eng
    eng.close()


def greedy(n: int = 12) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=n, temperature=0.0)


def alone(engine: Engine, model: str, text: str, settings: GenerationSettings | None = None) -> str:
    return engine.submit(model, ask(text), settings or greedy()).result(timeout=60).text


def batched(engine: Engine, pairs: list[tuple[str, str]], settings: GenerationSettings | None = None) -> list[str]:
    """Submit all at once with a window long enough that the batch fires by count, not by time."""
    engine.max_batch, engine.window_s = len(pairs), 60.0
    try:
        before = len(engine.batch_sizes)
        jobs = [engine.submit(model, ask(text), settings or greedy()) for model, text in pairs]
        texts = [j.result(timeout=60).text for j in jobs]
        assert list(engine.batch_sizes)[before:] == [len(pairs)]
        return texts
    finally:
        engine.max_batch, engine.window_s = 8, 0.0


def test_names_of_the_served_models(engine, served):
    _, run_id = served
    assert engine.names == ["base", run_id, f"{run_id}/ckpt-8"]
    assert engine.context_length == 512


def test_a_batch_answers_as_each_prompt_alone(engine, served):
    _, run_id = served  # the random base repeats one token whatever it is asked; an adapter's answers differ
    one_by_one = [alone(engine, run_id, p) for p in PROMPTS]
    assert batched(engine, [(run_id, p) for p in PROMPTS]) == one_by_one
    assert len(set(one_by_one)) == len(PROMPTS)


def test_base_and_two_adapters_in_one_batch_answer_as_each_alone(engine, served):
    _, run_id = served
    models = ["base", run_id, f"{run_id}/ckpt-8"]
    prompt = PROMPTS[0]
    each = [alone(engine, m, prompt) for m in models]
    assert len(set(each)) == 3, "the adapters do not change the answer: are they applied?"
    pairs = [(m, p) for m in models for p in PROMPTS[:2]]
    mixed = batched(engine, pairs)
    assert mixed == [alone(engine, m, p) for m, p in pairs]
    assert mixed[0] == each[0] and mixed[2] == each[1] and mixed[4] == each[2]


def test_concurrent_submits_from_threads_share_one_generate_call(engine):
    calls: list[int] = []
    engine.on_batch = lambda jobs: calls.append(len(jobs))
    engine.max_batch, engine.window_s = 8, 60.0
    try:
        jobs: list = [None] * 8
        gate = threading.Barrier(8)

        def client(i: int) -> None:
            gate.wait()
            jobs[i] = engine.submit("base", ask(PROMPTS[i % 4]), greedy(6))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results = [j.result(timeout=60) for j in jobs]
    finally:
        engine.on_batch = None
        engine.max_batch, engine.window_s = 8, 0.0
    assert calls == [8]
    assert [r.text for r in results[:4]] == [r.text for r in results[4:]]


def test_the_stream_adds_up_to_the_answer(engine, served):
    _, run_id = served
    job = engine.submit(run_id, ask(PROMPTS[1]), greedy(16))
    deltas = list(job)
    done = job.result(timeout=60)
    assert len(deltas) > 1
    assert "".join(deltas) == done.text
    assert done.model == run_id and done.prompt_tokens == len(engine.prompt_tokens(run_id, ask(PROMPTS[1])))
    assert done.first_token_s is not None and done.first_token_s <= done.seconds


def test_a_stop_string_ends_the_answer_before_it(engine, served):
    _, run_id = served
    full = engine.submit(run_id, ask(PROMPTS[2]), greedy(20)).result(timeout=60)
    assert len(full.text) > 8
    stop = full.text[4:7]
    job = engine.submit(run_id, ask(PROMPTS[2]), greedy(20), stop=[stop, "never-there"])
    streamed = "".join(job)
    cut = job.result(timeout=60)
    assert cut.text == full.text[: full.text.find(stop)]
    assert streamed == cut.text
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens


def test_max_new_tokens_ends_with_length(engine):
    done = engine.submit("base", ask(PROMPTS[0]), greedy(5)).result(timeout=60)
    assert (done.finish_reason, done.completion_tokens) == ("length", 5)


def test_rows_of_one_batch_stop_at_their_own_limits(engine, served):
    _, run_id = served
    engine.max_batch, engine.window_s = 2, 60.0
    try:
        short = engine.submit(run_id, ask(PROMPTS[0]), greedy(3))
        long = engine.submit(run_id, ask(PROMPTS[0]), greedy(9))
        assert short.result(timeout=60).completion_tokens == 3
        assert long.result(timeout=60).completion_tokens == 9
        assert long.result().text.startswith(short.result().text)
    finally:
        engine.max_batch, engine.window_s = 8, 0.0


def test_a_seed_makes_sampling_reproducible(engine, served):
    _, run_id = served
    settings = GenerationSettings(max_new_tokens=12, temperature=1.5, seed=7)
    first = alone(engine, run_id, PROMPTS[3], settings)
    assert alone(engine, run_id, PROMPTS[3], settings) == first
    others = {
        alone(engine, run_id, PROMPTS[3], GenerationSettings(max_new_tokens=12, temperature=1.5, seed=s))
        for s in (1, 2, 3)
    }
    assert others != {first}


def test_a_prompt_longer_than_the_context_is_refused_with_the_numbers(engine):
    long = " ".join(["password reset order shipping"] * 200)
    with pytest.raises(ServeError) as err:
        engine.submit("base", ask(long), greedy(100))
    n = len(engine.prompt_tokens("base", ask(long)))
    assert f"{n} tokens" in str(err.value) and "512" in str(err.value) and "100" in str(err.value)


def test_an_unknown_model_is_refused_with_the_served_names(engine, served):
    with pytest.raises(ServeError, match=f"no model 'nope'.*base, {served[1]}"):
        engine.submit("nope", ask("hi"), greedy())


def test_an_error_inside_generate_fails_its_batch_and_the_engine_goes_on(engine, monkeypatch):
    real = engine.model.generate
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.model, "generate", broken)
    job = engine.submit("base", ask(PROMPTS[0]), greedy(4))
    with pytest.raises(ServeError, match="generation failed: RuntimeError: CUDA out of memory"):
        job.result(timeout=60)
    with pytest.raises(ServeError, match="generation failed"):
        list(job)
    assert engine.submit("base", ask(PROMPTS[0]), greedy(4)).result(timeout=60).completion_tokens == 4


def test_incremental_decoding_keeps_multibyte_characters_and_spaces(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Grüße aus Köln, 東京 😀 and  two spaces"
    ids = tok(text, add_special_tokens=False)["input_ids"]

    class Sink:
        stop: list[str] = []
        settings = greedy(1000)
        first_token_s = 0.0
        cancelled = threading.Event()
        got: list[str] = []

        def _push(self, delta: str) -> None:
            self.got.append(delta)

    sink = Sink()
    row = _Row(sink, tok, {tok.eos_token_id})  # type: ignore[arg-type]
    for token in ids:
        row.add(token)
    row.close()
    assert "".join(sink.got) == text
    assert all("\ufffd" not in d for d in sink.got)


def test_models_on_different_bases_are_refused(served, tiny_model_dir, tmp_path):
    ws, _ = served
    other = tmp_path / "other-base"
    shutil.copytree(tiny_model_dir, other)
    refs = resolve_models(ws, ["demo/final", str(other)])
    with pytest.raises(ServeError, match="different base models"):
        Engine(refs)


def test_close_fails_later_submits(served):
    ws, _ = served
    eng = load_engine(ws, ["base"])
    eng.close()
    with pytest.raises(ServeError, match="closed"):
        eng.submit("base", ask("hi"), greedy())


def test_close_stops_the_batch_being_generated(served):
    ws, run_id = served
    eng = load_engine(ws, ["demo/final"], window_s=0.0)
    closer: list[threading.Thread] = []

    def close_now(jobs) -> None:  # close while this batch is about to generate; wait until its jobs are cancelled
        closer.append(threading.Thread(target=eng.close))
        closer[0].start()
        assert all(j.cancelled.wait(30) for j in jobs)

    eng.on_batch = close_now
    job = eng.submit(run_id, ask(PROMPTS[0]), greedy(400))
    with pytest.raises(ServeError, match="cancelled"):
        job.result(timeout=60)
    closer[0].join(30)
    assert not closer[0].is_alive() and not eng._thread.is_alive()


def test_the_clients_of_a_batch_are_batched_again_when_they_come_back(engine):
    """Eight clients answered together send their next requests a few milliseconds apart; the engine waits
    for as many as it just answered (up to regroup_s), so they do not split into partial batches."""
    batched(engine, [("base", PROMPTS[i % 4]) for i in range(4)])  # a batch of four, just answered
    engine.regroup_s = 30.0  # long: the batch below fires by count, never by time
    try:
        before = len(engine.batch_sizes)
        jobs: list = []

        def client(i: int) -> None:
            time.sleep(0.01 * i)  # one after another, as answers reach their clients
            jobs.append(engine.submit("base", ask(PROMPTS[i]), greedy(4)))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for job in jobs:
            job.result(timeout=60)
        assert list(engine.batch_sizes)[before:] == [4]
    finally:
        engine.regroup_s = 0.3
    batched(engine, [("base", PROMPTS[i % 4]) for i in range(4)])
    before = len(engine.batch_sizes)
    two = [engine.submit("base", ask(PROMPTS[i]), greedy(4)) for i in range(2)]  # two of the four come back
    for job in two:
        job.result(timeout=60)  # the wait ends at regroup_s: the two are answered, not held
    assert list(engine.batch_sizes)[before:] == [2]
    engine.regroup_s = REGROUP_S
