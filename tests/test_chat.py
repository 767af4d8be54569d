"""The chat playground's core and `workbench chat`, on the tiny random model with real random LoRA adapters."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from shipkit import SUPPORT, fake_run

from workbench.chat import ChatError, ChatSession, conversation_row
from workbench.cli import main
from workbench.data.formats import Shape
from workbench.data.store import open_dataset
from workbench.errors import DataError, ServeError
from workbench.eval.candidates import resolve_models
from workbench.eval.generate import generate_batch, load_model, prompt_ids
from workbench.eval.store import GenerationSettings
from workbench.eval.suites import load_suite
from workbench.serve.engine import Engine

SYSTEM = json.loads((SUPPORT / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])["messages"][0]["content"]
SHORT = GenerationSettings(max_new_tokens=10)


@pytest.fixture(scope="module")
def chat_ws(tmp_path_factory, tiny_model_dir) -> Path:
    ws = tmp_path_factory.mktemp("chat-ws")
    fake_run(ws, tiny_model_dir, steps=(4,), best=4)
    return ws


@pytest.fixture(scope="module")
def engine(chat_ws):
    refs = resolve_models(chat_ws, ["base", "last/adapter"])
    with Engine(refs) as eng:
        yield eng


@pytest.fixture
def data(tmp_path) -> Path:
    shutil.copytree(SUPPORT, tmp_path / "support")
    return tmp_path / "support"


def session(chat_ws, engine, **kw) -> ChatSession:
    return ChatSession(chat_ws, ["base", "last/adapter"], engine=engine, settings=kw.pop("settings", SHORT), **kw)


def test_two_models_stream_together_and_answer_like_the_eval_generation(chat_ws, engine):
    chat = session(chat_ws, engine)
    base, adapter = chat.models
    assert chat.models == ["base", next(r.run_id for r in chat.refs if r.run_id)]
    before = len(engine.batch_sizes)
    deltas = list(chat.send("My kettle arrived broken, what now?"))
    assert list(engine.batch_sizes)[before:] == [2]  # both answers came from one generate call
    done = [d for d in deltas if d.done]
    assert sorted(d.model for d in done) == sorted(chat.models)
    first_done = deltas.index(done[0])
    assert {d.model for d in deltas[:first_done] if d.text} == {base, adapter}  # both streamed before either ended
    for d in done:
        assert "".join(x.text for x in deltas if x.model == d.model and not x.done) == d.completion.text
        assert d.completion.completion_tokens > 0
    answers = {d.model: d.completion.text for d in done}
    assert answers[base] != answers[adapter]  # the random adapter changes the answer
    for ref, name in zip(chat.refs, chat.models):  # greedy: the same answers as the eval core's generation
        model, tokenizer = load_model(ref, merge=False)
        prompt = prompt_ids(tokenizer, chat.history(name)[:-1])
        assert generate_batch(model, tokenizer, [prompt], SHORT)[0].output == answers[name]


def test_history_keeps_each_models_own_answers_and_the_system_prompt_of_the_training_data(chat_ws, engine):
    chat = session(chat_ws, engine)
    assert chat.system_prompt == SYSTEM
    first = chat.ask("Hello")
    second = chat.ask("And my refund?")
    for model in chat.models:
        assert chat.history(model) == [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": first[model]},
            {"role": "user", "content": "And my refund?"},
            {"role": "assistant", "content": second[model]},
        ]
    chat.reset()
    assert chat.turns == 0 and chat.history(chat.models[0]) == [{"role": "system", "content": SYSTEM}]
    own = ChatSession(chat_ws, ["base"], engine=engine, system_prompt="Be brief.")
    assert own.history("base") == [{"role": "system", "content": "Be brief."}]


def test_a_turn_left_unread_is_cancelled_and_not_kept(chat_ws, engine, monkeypatch):
    jobs = []
    submit = engine.submit
    monkeypatch.setattr(engine, "submit", lambda *a, **kw: jobs.append(submit(*a, **kw)) or jobs[-1])
    chat = session(chat_ws, engine, settings=GenerationSettings(max_new_tokens=400))
    stream = chat.send("Tell me a long story")
    assert not next(stream).done
    stream.close()  # the reader went away (ctrl-C, the screen closed)
    assert len(jobs) == 2 and chat.turns == 0
    for job in jobs:
        with pytest.raises(ServeError, match="cancelled"):
            job.result(timeout=120)
    assert [d.model for d in chat.send("Hi") if d.done]  # the engine goes on answering


def test_settings_change_between_turns_and_bad_ones_are_refused(chat_ws, engine):
    chat = session(chat_ws, engine)
    chat.set_settings(max_new_tokens=3)
    done = [d for d in chat.send("Hi") if d.done]
    assert all(d.completion.completion_tokens <= 3 for d in done)
    with pytest.raises(ChatError, match="temperature"):
        chat.set_settings(temperature=-1)
    with pytest.raises(ChatError, match="unknown generation setting 'colour'"):
        chat.set_settings(colour=1)
    assert chat.settings.max_new_tokens == 3 and chat.settings.temperature == 0


def test_errors_name_what_is_wrong(chat_ws, engine):
    chat = session(chat_ws, engine)
    with pytest.raises(ChatError, match="empty"):
        list(chat.send("   "))
    with pytest.raises(ChatError, match="conversation is empty"):
        chat.save_as_example(SUPPORT / "train.jsonl", "base")
    with pytest.raises(ChatError, match="no model 'nope'"):
        chat.history("nope")
    with pytest.raises(ChatError, match="not loaded in the engine"):
        ChatSession(chat_ws, ["last/ckpt-4"], engine=engine)
    with pytest.raises(ChatError, match="no model to chat"):
        ChatSession(chat_ws, [], engine=engine)
    with pytest.raises(ChatError, match="named twice"):
        ChatSession(chat_ws, ["base", "base"], engine=engine)


def test_save_as_example_adds_a_pending_chat_row_the_data_store_reads_back(chat_ws, engine, data):
    chat = session(chat_ws, engine)
    chat.ask("Where is my order #123?")
    dataset = data / "train.jsonl"
    rows_before = len(dataset.read_text().splitlines())
    adapter = chat.models[1]
    index = chat.save_as_example(dataset, adapter)
    assert index == rows_before  # appended last
    with open_dataset(dataset, readonly=True) as back:
        example = back.visible()[index]
        assert example.row == {"messages": chat.history(adapter)}
        assert (example.status, example.source) == ("pending", "chat")
        assert len(back.visible()) == rows_before + 1
    with pytest.raises(DataError, match="no such dataset"):
        chat.save_as_example(data / "missing.jsonl", adapter)
    with pytest.raises(DataError, match="cannot hold a conversation"):
        chat.save_as_example(data / "preferences.jsonl", adapter)


def test_save_as_example_writes_the_datasets_own_shape(chat_ws, engine, data):
    chat = session(chat_ws, engine)
    answer = chat.ask("My desk has not arrived")["base"]
    chat.save_as_example(data / "sharegpt_sample.jsonl", "base")
    with open_dataset(data / "sharegpt_sample.jsonl", readonly=True) as back:
        assert back.visible()[-1].row["conversations"][1:] == [
            {"from": "human", "value": "My desk has not arrived"},
            {"from": "gpt", "value": answer},
        ]
    chat.save_as_example(data / "alpaca_sample.json", "base")
    with open_dataset(data / "alpaca_sample.json", readonly=True) as back:
        assert back.visible()[-1].row == {"instruction": SYSTEM, "input": "My desk has not arrived", "output": answer}
    chat.ask("Any news?")
    with pytest.raises(DataError, match="one question and one answer"):
        chat.save_as_example(data / "alpaca_sample.json", "base")


def test_conversation_row_for_each_shape():
    turns = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]
    where = Path("d.jsonl")
    assert conversation_row(turns, Shape.PROMPT_COMPLETION, True, where) == {
        "prompt": turns[:2],
        "completion": turns[2:],
    }
    assert conversation_row(turns[1:], Shape.PROMPT_COMPLETION, False, where) == {"prompt": "Q", "completion": "A"}
    assert conversation_row(turns[1:], Shape.ALPACA, False, where) == {"instruction": "Q", "input": "", "output": "A"}
    with pytest.raises(DataError, match="no place for the system prompt"):
        conversation_row(turns, Shape.PROMPT_COMPLETION, False, where)
    with pytest.raises(DataError, match=r"d.jsonl \(language-modeling shape: text\).*plain-text"):
        conversation_row(turns, Shape.LANGUAGE_MODELING, False, where)


def test_save_as_case_appends_a_case_the_suite_reader_runs(chat_ws, engine, data):
    chat = session(chat_ws, engine)
    answer = chat.ask("I was charged twice")[chat.models[1]]
    suite = data / "regression.jsonl"
    before = len(load_suite(suite).cases)
    case_id = chat.save_as_case(suite, chat.models[1], {"must_contain": answer.strip() or "x"})
    cases = load_suite(suite).cases
    assert len(cases) == before + 1 and cases[-1].id == case_id and not load_suite(suite).problems
    assert cases[-1].messages == chat.history(chat.models[1])[:-1]
    assert cases[-1].expect == {"must_contain": answer.strip() or "x"}
    assert chat.save_as_case(suite, chat.models[1], {"refuse": False}) != case_id  # a fresh id each time
    text = suite.read_text()
    with pytest.raises(DataError, match=r"refused.*must_contain"):
        chat.save_as_case(suite, "base", {"must_contain": ""})
    with pytest.raises(DataError, match=r"a suite is a \.jsonl"):
        chat.save_as_case(data / "cases.txt", "base", {"refuse": False})
    with pytest.raises(DataError, match="not a suite"):
        chat.save_as_case(data / "train.jsonl", "base", {"refuse": False})
    assert suite.read_text() == text
    fresh = data / "new-suite.jsonl"
    chat.save_as_case(fresh, "base", {"refuse": False})
    assert [c.expect for c in load_suite(fresh).cases] == [{"refuse": False}]


def test_cli_chat_reads_a_pipe_answers_saves_and_quits(chat_ws, data, monkeypatch, capsys):
    dataset = data / "train.jsonl"
    rows_before = len(dataset.read_text().splitlines())
    script = f"Hello there\n/temp nope\n/save {dataset}\n/case {data / 'mine.jsonl'} 1\n/quit\nnever sent\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    assert main(["-w", str(chat_ws), "chat", "last/final", "--max-tokens", "6"]) == 0
    out, err = capsys.readouterr()
    run_id = next(p.name for p in (chat_ws / "runs").iterdir())
    assert f"chatting with [1] {run_id}" in out and "system prompt: Answer with one line of JSON" in out
    assert "tokens ·" in out
    assert "error: generation setting temperature" in err
    assert f"saved {run_id}'s conversation as example {rows_before} of {dataset}" in out
    assert f"saved case chat-{run_id}-1" in out
    with open_dataset(dataset, readonly=True) as back:
        assert back.visible()[-1].source == "chat"
        assert back.visible()[-1].row["messages"][1] == {"role": "user", "content": "Hello there"}
    assert len(load_suite(data / "mine.jsonl").cases) == 1
    assert "never sent" not in out


def test_cli_chat_with_two_models_prints_both_and_refuses_three(chat_ws, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi\n"))
    assert main(["-w", str(chat_ws), "chat", "base", "last/adapter", "--max-tokens", "4", "--no-system"]) == 0
    out, _ = capsys.readouterr()
    run_id = next(p.name for p in (chat_ws / "runs").iterdir())
    assert out.index("── base ──") < out.index(f"── {run_id} ──")  # the first model live, the second under it
    assert "system prompt: (none)" in out
    assert main(["-w", str(chat_ws), "chat", "a", "b", "c"]) == 2
    assert "at most two models" in capsys.readouterr().err


def test_a_merged_model_and_its_base_chat_side_by_side_on_two_engines(chat_ws, engine):
    """Models on different bases (a merged model beside the base) get one engine each, not a refusal."""
    from workbench.chat import EngineGroup
    from workbench.ship.merge import merge_model

    merged = merge_model(chat_ws, "last/adapter", chat_ws / "models" / "demo-merged")
    with ChatSession(chat_ws, [str(merged.path), "base"], settings=SHORT) as chat:
        assert isinstance(chat.engine, EngineGroup)
        assert chat.models == ["demo-merged", "base"]
        answers = chat.ask("My kettle arrived broken, what now?")
    # the merged model answers as the unmerged adapter does (greedy), the base as itself
    reference = session(chat_ws, engine).ask("My kettle arrived broken, what now?")
    adapter = next(m for m in reference if m != "base")
    assert answers["demo-merged"] == reference[adapter]
    assert answers["base"] == reference["base"]
