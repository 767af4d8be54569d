"""Eval generation: batched (the eval generator's path) against one example at a time, in one process.

The model is the bundled SmolLM2-135M-Instruct, the prompts the first N (default 32) examples
of sample_data/support/test.jsonl through its chat template, greedy, the same
max_new_tokens (default 64) on both sides, fp32 on the CPU with --threads torch threads.

- Batched: what :func:`workbench.eval.generate.generate` does per model: prompts grouped by
  length (:func:`batches`), left-padded, :func:`generate_batch` at the eval's batch size.
- One at a time: the plain loop, each prompt alone (no padding, no mask) through
  ``model.generate``: the fair baseline, nothing added to it.

The two sides alternate batch by batch (one batch's prompts one at a time, then the same
prompts batched), so a neighbour's load on the machine falls on both alike. Printed:
examples/s and new tokens/s of each, the ratio, whether the 4x target is met, and whether
the batched answers equal the one-at-a-time answers token for token. ``--sweep`` then
times the batched side alone at other batch sizes; ``--merge`` times a LoRA adapter
(a sample run's, r 32 on every linear) merged against unmerged.

    python bench/eval_throughput.py [--n 32] [--batch-size 16] [--max-new-tokens 64] [--threads 2] [--sweep] [--merge]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from workbench.eval.candidates import examples_from_dataset  # noqa: E402
from workbench.eval.generate import batches, generate_batch, load_model, prompt_ids, stop_ids  # noqa: E402
from workbench.eval.store import GenerationSettings, ModelRef  # noqa: E402

TEST = ROOT / "sample_data" / "support" / "test.jsonl"
ADAPTER = ROOT / "sample_data" / "runs" / "demo-20261125-114013" / "adapter"
BASE = ModelRef(key="base", label="base", kind="base", path="bundled", base_model="bundled")


def one_at_a_time(model, tokenizer, prompt: list[int], max_new_tokens: int) -> list[int]:
    """The baseline: one prompt, no padding, greedy; the new tokens up to the end of the turn."""
    eos = stop_ids(model, tokenizer)
    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.tensor([prompt]),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )
    new = out[0, len(prompt) :].tolist()
    end = next((i for i, t in enumerate(new) if t in eos), None)
    return new if end is None else new[:end]


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<44} {value:>16}  {note}")


def compare(model, tokenizer, prompts: list[list[int]], batch_size: int, max_new_tokens: int) -> None:
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
    groups = batches([len(p) for p in prompts], batch_size)
    single_s = batch_s = 0.0
    single_tokens = batch_tokens = same = padding = 0
    for group in groups:
        group_prompts = [prompts[i] for i in group]
        t0 = time.perf_counter()
        alone = [one_at_a_time(model, tokenizer, p, max_new_tokens) for p in group_prompts]
        t1 = time.perf_counter()
        together = generate_batch(model, tokenizer, group_prompts, settings)
        t2 = time.perf_counter()
        single_s += t1 - t0
        batch_s += t2 - t1
        single_tokens += sum(len(a) for a in alone)
        batch_tokens += sum(g.output_tokens for g in together)
        same += sum(tokenizer.decode(a, skip_special_tokens=True) == g.output for a, g in zip(alone, together))
        width = max(map(len, group_prompts))
        padding += sum(width - len(p) for p in group_prompts)
        print(
            f"    batch of {len(group)}: one at a time {t1 - t0:6.1f} s, batched {t2 - t1:6.1f} s "
            f"({(t1 - t0) / (t2 - t1):.2f}x)",
            flush=True,
        )
    n = len(prompts)
    ratio = (n / batch_s) / (n / single_s)
    print()
    print(f"  {'':<44} {'':>16}  notes")
    row(
        "one at a time (plain model.generate loop)",
        f"{n / single_s:.3f} ex/s",
        f"{single_s:.1f} s, {single_tokens / single_s:.1f} new tokens/s",
    )
    row(
        f"batched (eval generator, batch {batch_size})",
        f"{n / batch_s:.3f} ex/s",
        f"{batch_s:.1f} s, {batch_tokens / batch_s:.1f} new tokens/s",
    )
    row("speed-up", f"{ratio:.2f}x", "target >= 4x: " + ("MET" if ratio >= 4 else "NOT MET"))
    row("same answers, token for token", f"{same}/{n}", "greedy: batching must not change an answer")
    row(
        "left padding",
        f"{100 * padding / (padding + sum(map(len, prompts))):.1f} %",
        f"of prompt positions; {len(groups)} batches sorted by length",
    )
    row("new tokens per answer (mean)", f"{single_tokens / n:.1f}", f"max {max_new_tokens}")


def sweep(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, sizes: list[int]) -> None:
    print("\n  the batched side alone, by batch size:")
    for size in sizes:
        settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=size)
        t0 = time.perf_counter()
        for group in batches([len(p) for p in prompts], size):
            generate_batch(model, tokenizer, [prompts[i] for i in group], settings)
        seconds = time.perf_counter() - t0
        row(f"  batch {size}", f"{len(prompts) / seconds:.3f} ex/s", f"{seconds:.1f} s")


def merge_check(examples: list[dict], batch_size: int, max_new_tokens: int) -> None:
    """A LoRA adapter merged into the base against applied on the fly: speed and answers."""
    ref = ModelRef(key="adapter", label="adapter", kind="adapter", path=str(ADAPTER), base_model="bundled")
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
    print(f"\n  LoRA adapter ({ADAPTER.relative_to(ROOT)}), batch {batch_size}:")
    outputs = {}
    for merge in (True, False):
        t0 = time.perf_counter()
        model, tokenizer = load_model(ref, merge=merge)
        load_s = time.perf_counter() - t0
        prompts = [prompt_ids(tokenizer, e["messages"]) for e in examples]
        t0 = time.perf_counter()
        outputs[merge] = [
            g.output
            for group in batches([len(p) for p in prompts], batch_size)
            for g in generate_batch(model, tokenizer, [prompts[i] for i in group], settings)
        ]
        seconds = time.perf_counter() - t0
        row(
            "  merged (merge_and_unload)" if merge else "  unmerged (PeftModel)",
            f"{len(prompts) / seconds:.3f} ex/s",
            f"{seconds:.1f} s generating, {load_s:.1f} s loading",
        )
        del model
    row("  same answers", f"{sum(a == b for a, b in zip(outputs[True], outputs[False]))}/{len(examples)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="prompts from the test split (default 32)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=GenerationSettings().batch_size,
        help=f"the eval's batch size (default {GenerationSettings().batch_size}, the eval default)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the two-core target)")
    parser.add_argument("--sweep", action="store_true", help="then time the batched side at batch 4, 8, 16, 32")
    parser.add_argument("--merge", action="store_true", help="then time a LoRA adapter merged vs unmerged")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    examples = examples_from_dataset(TEST, limit=args.n)
    model, tokenizer = load_model(BASE)
    prompts = [prompt_ids(tokenizer, e["messages"]) for e in examples]
    print(
        f"{len(prompts)} prompts ({min(map(len, prompts))}-{max(map(len, prompts))} tokens), bundled SmolLM2-135M-Instruct, "
        f"greedy, {args.max_new_tokens} new tokens max, fp32, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs"
    )
    # Warm both paths up (first-call allocations, kernel choices) so neither side pays for them.
    warm = GenerationSettings(max_new_tokens=4, batch_size=args.batch_size)
    one_at_a_time(model, tokenizer, prompts[0], 4)
    generate_batch(model, tokenizer, prompts[: args.batch_size], warm)
    compare(model, tokenizer, prompts, args.batch_size, args.max_new_tokens)
    if args.sweep:
        sweep(model, tokenizer, prompts, args.max_new_tokens, [4, 8, 16, 32])
    del model
    if args.merge:
        merge_check(examples, args.batch_size, args.max_new_tokens)


if __name__ == "__main__":
    main()
