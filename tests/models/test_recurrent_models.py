"""CharLM and SequenceClassifier: they learn, generate deterministically, check gradients."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from handgrad import numerical_gradient
from handgrad.data import CharVocab
from handgrad.losses import CrossEntropyLoss
from handgrad.models import CharLM, SequenceClassifier, train_charlm, unigram_entropy
from handgrad.optim import Adam


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny shapes: one BLAS thread is fastest and avoids contention on a busy CPU."""
    with threadpool_limits(1):
        yield


TEXT = "the quick brown fox jumps over the lazy dog. " * 30


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_charlm_loss_falls_well_below_unigram_entropy(cell):
    vocab = CharVocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    model = CharLM(len(vocab), embedding_dim=16, hidden_size=32, cell=cell, rng=0)
    losses = train_charlm(model, ids, seq_len=24, batch_size=8, steps=40, epochs=100, lr=2e-2)
    assert len(losses) == 40
    baseline = unigram_entropy(ids)  # ~3.0 nats
    assert losses[0] > 0.9 * baseline
    assert np.mean(losses[-5:]) < 0.4 * baseline
    assert model.training


def test_generate_is_deterministic_given_rng_and_restores_mode():
    vocab = CharVocab.from_text(TEXT)
    model = CharLM(len(vocab), embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.2,
                   rng=1)
    a = model.generate("the ", 40, temperature=1.0, rng=7, vocab=vocab)
    b = model.generate("the ", 40, temperature=1.0, rng=7, vocab=vocab)
    c = model.generate("the ", 40, temperature=1.0, rng=8, vocab=vocab)
    assert isinstance(a, str) and len(a) == 40 and a == b and a != c
    assert model.training and model.rnn.training
    greedy = model.generate(vocab.encode("the "), 10, temperature=0)
    assert greedy.dtype == np.int64 and greedy.shape == (10,)
    np.testing.assert_array_equal(greedy, model.generate(vocab.encode("the "), 10, temperature=0))
    with pytest.raises(ValueError, match="vocab"):
        model.generate("the", 5)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        model.generate("THE", 5, vocab=vocab)


def test_charlm_gradient_and_state_dict_names():
    model = CharLM(5, embedding_dim=3, hidden_size=4, rng=2, dtype=np.float64)
    ids = np.array([[0, 1, 4], [2, 2, 3]])
    g = np.random.default_rng(3).standard_normal((2, 3, 5))
    logits = model(ids)
    assert logits.shape == (2, 3, 5)
    model.backward(g)
    analytic = model.embedding.weight.grad.copy()
    numeric = numerical_gradient(lambda _: float(np.sum(model(ids) * g)),
                                 model.embedding.weight.data)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    assert "rnn.weight_ih_l0" in model.state_dict() and "head.weight" in model.state_dict()


@pytest.mark.parametrize("pooling,cell,bidirectional", [("last", "lstm", False),
                                                        ("mean", "gru", True)])
def test_sequence_classifier_learns_to_remember_the_first_step(pooling, cell, bidirectional):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((128, 8, 2)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)  # the label is decided by the first step only
    model = SequenceClassifier(2, 16, 2, cell=cell, pooling=pooling,
                               bidirectional=bidirectional, rng=5)
    opt = Adam(model.parameters(), lr=2e-2)
    criterion = CrossEntropyLoss()
    for _ in range(80):
        loss = criterion(model(x), y)
        opt.zero_grad()
        model.backward(criterion.backward())
        opt.step()
    assert loss < 0.2
    model.eval()
    assert np.mean(np.argmax(model(x), axis=1) == y) > 0.95


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_sequence_classifier_gradients(check_gradients, pooling):
    model = SequenceClassifier(2, 3, 3, num_layers=2, bidirectional=True, pooling=pooling,
                               rng=6, dtype=np.float64)
    x = np.random.default_rng(7).standard_normal((2, 4, 2))
    check_gradients(model, x)
    ids_model = SequenceClassifier(vocab_size=6, embedding_dim=3, hidden_size=4,
                                   num_classes=2, cell="gru", rng=8)
    out = ids_model(np.array([[1, 2, 5], [0, 0, 3]]))
    assert out.shape == (2, 2) and ids_model.backward(np.ones((2, 2), np.float32)) is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one of input_size"):
        SequenceClassifier(3, 4, 2, vocab_size=10)
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(3, 4, 2, pooling="max")
    with pytest.raises(ValueError, match="cell"):
        CharLM(10, cell="rnn")
    with pytest.raises(ValueError, match=r"ids of shape \(N, T\)"):
        CharLM(10)(np.zeros((1, 2, 3), np.int64))


def test_charlm_state_carries_over_chunks_and_unigram_entropy():
    model = CharLM(6, embedding_dim=4, hidden_size=5, cell="gru", rng=9)
    ids = np.random.default_rng(10).integers(0, 6, size=(3, 10))
    whole = model(ids)
    first = model(ids[:, :4])
    rest = model(ids[:, 4:], model.final_state)
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), whole, rtol=1e-5,
                               atol=1e-6)
    assert model(ids[0]).shape == (10, 6)  # unbatched ids (T,)
    assert unigram_entropy(np.array([0, 1, 0, 1])) == pytest.approx(np.log(2))
    assert unigram_entropy(np.zeros(5, np.int64)) == 0
