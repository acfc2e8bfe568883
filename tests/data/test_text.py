"""CharVocab, load_text, python_stdlib_corpus and BPTTBatches."""

from __future__ import annotations

import numpy as np
import pytest

from handgrad.data import BPTTBatches, CharVocab, load_text, python_stdlib_corpus


def test_vocab_round_trip_and_save(tmp_path):
    text = "hello, wörld 🙂\n"
    vocab = CharVocab.from_text(text)
    assert len(vocab) == len(set(text)) and vocab.chars == sorted(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    vocab.save(tmp_path / "vocab.json")
    assert CharVocab.load(tmp_path / "vocab.json") == vocab
    with pytest.raises(ValueError, match=r"character 'z' at position 1"):
        vocab.encode("hz")
    with pytest.raises(ValueError, match="id 99"):
        vocab.decode([1, 99])


def test_load_text_errors(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("abc", encoding="utf-8")
    assert load_text(good) == "abc"
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="not valid utf-8"):
        load_text(tmp_path / "latin.txt")
    assert load_text(tmp_path / "latin.txt", encoding="latin-1") == "café"


def test_stdlib_corpus_is_deterministic_and_bounded(tmp_path):
    text = python_stdlib_corpus(max_chars=20_000)
    assert len(text) == 20_000 and "def " in text
    assert python_stdlib_corpus(max_chars=20_000) == text
    (tmp_path / "b.py").write_text("B = 2\n")
    (tmp_path / "a.py").write_text("A = 1\n")
    assert python_stdlib_corpus(root=tmp_path) == "A = 1\n\n\nB = 2\n"
    with pytest.raises(FileNotFoundError, match="load_text"):
        python_stdlib_corpus(root=tmp_path / "nothing")


def test_bptt_batches_are_contiguous_streams():
    ids = np.arange(23)
    batches = BPTTBatches(ids, batch_size=2, seq_len=4)
    chunks = list(batches)
    assert len(chunks) == len(batches) == 3
    inputs = np.concatenate([c[0] for c in chunks], axis=1)
    targets = np.concatenate([c[1] for c in chunks], axis=1)
    np.testing.assert_array_equal(inputs, [np.arange(11), np.arange(11, 22)])
    np.testing.assert_array_equal(targets, inputs + 1)
    assert chunks[-1][0].shape == (2, 3)
    with pytest.raises(ValueError, match="too few"):
        BPTTBatches(np.arange(2), batch_size=2, seq_len=4)
    with pytest.raises(ValueError, match="seq_len"):
        BPTTBatches(ids, batch_size=2, seq_len=0)
