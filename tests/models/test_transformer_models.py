"""CharTransformer: gradients of every parameter, learning, generation, names, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from handgrad import numerical_gradient
from handgrad.data import CharVocab
from handgrad.models import CharTransformer, train_char_transformer, unigram_entropy


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny shapes: one BLAS thread is fastest and avoids contention on a busy CPU."""
    with threadpool_limits(1):
        yield


TEXT = "the quick brown fox jumps over the lazy dog. " * 30


@given(N=st.integers(1, 2), T=st.integers(1, 4), norm_first=st.booleans(),
       batched=st.booleans(), seed=st.integers(0, 2**16))
def test_char_transformer_parameter_gradients(N, T, norm_first, batched, seed):
    # ids have no gradient, so gradcheck's input row does not apply: every parameter is
    # checked against central differences of sum(logits * g) directly
    model = CharTransformer(5, d_model=4, nhead=2, num_layers=1, dim_feedforward=4, max_len=4,
                            norm_first=norm_first, activation="relu", dtype=np.float64,
                            rng=seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 5, size=(N, T) if batched else (T,))
    g = rng.standard_normal(ids.shape + (5,))
    model.zero_grad()
    assert model(ids).shape == ids.shape + (5,)
    assert model.backward(g) is None

    def objective(_):
        return float(np.sum(model(ids) * g))

    for name, p in model.named_parameters():
        expected = numerical_gradient(objective, p.data)
        np.testing.assert_allclose(p.grad, expected, rtol=1e-4, atol=1e-6, err_msg=name)


def test_loss_falls_well_below_unigram_entropy():
    vocab = CharVocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    model = CharTransformer(len(vocab), d_model=16, nhead=2, num_layers=1, dim_feedforward=32,
                            max_len=24, rng=0)
    losses = train_char_transformer(model, ids, seq_len=24, batch_size=8, steps=60, lr=1e-2,
                                    rng=0)
    assert len(losses) == 60
    baseline = unigram_entropy(ids)  # ~3.0 nats
    assert losses[0] > 0.9 * baseline
    assert np.mean(losses[-5:]) < 0.4 * baseline
    assert model.training


def test_generate_is_deterministic_beyond_the_context_and_restores_mode():
    vocab = CharVocab.from_text(TEXT)
    model = CharTransformer(len(vocab), d_model=8, nhead=2, num_layers=2, dim_feedforward=8,
                            max_len=6, dropout=0.2, rng=1)
    a = model.generate("the ", 20, temperature=1.0, rng=7, vocab=vocab)  # longer than max_len
    b = model.generate("the ", 20, temperature=1.0, rng=7, vocab=vocab)
    c = model.generate("the ", 20, temperature=1.0, rng=8, vocab=vocab)
    assert isinstance(a, str) and len(a) == 20 and a == b and a != c
    assert model.training and model.encoder.layers[1].dropout.training
    greedy = model.generate(vocab.encode("the quick"), 5, temperature=0)  # prompt > max_len
    assert greedy.dtype == np.int64 and greedy.shape == (5,)
    context = np.concatenate([vocab.encode("the quick"), greedy[:2]])[-6:]
    model.eval()
    assert int(np.argmax(model(context)[-1])) == greedy[2]
    with pytest.raises(ValueError, match="vocab"):
        model.generate("the", 5)
    with pytest.raises(ValueError, match="non-empty prompt"):
        model.generate([], 5)


def test_state_dict_names_and_layers_start_different():
    model = CharTransformer(7, d_model=8, nhead=2, num_layers=2, dim_feedforward=16, max_len=5)
    names = list(model.state_dict())
    assert names[:2] == ["embedding.weight", "pos_embedding.weight"]
    assert "encoder.layers.1.self_attn.in_proj_weight" in names
    assert "encoder.norm.weight" in names and names[-2:] == ["head.weight", "head.bias"]
    first, second = model.encoder.layers
    assert not np.array_equal(first.linear1.weight.data, second.linear1.weight.data)
    assert not np.array_equal(first.self_attn.in_proj_weight.data,
                              second.self_attn.in_proj_weight.data)
    post_norm = CharTransformer(7, d_model=8, nhead=2, num_layers=1, max_len=5, norm_first=False)
    assert not any(n.startswith("encoder.norm") for n in post_norm.state_dict())


def test_bad_input():
    model = CharTransformer(5, d_model=4, nhead=2, num_layers=1, max_len=3)
    with pytest.raises(ValueError, match=r"1 <= T <= max_len=3"):
        model(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="max_len"):
        train_char_transformer(model, np.zeros(20, dtype=np.int64), seq_len=4, steps=1)
    with pytest.raises(ValueError, match="at least seq_len"):
        train_char_transformer(model, np.zeros(3, dtype=np.int64), seq_len=3, steps=1)
    with pytest.raises(RuntimeError, match="no forward cached"):
        CharTransformer(5, d_model=4, nhead=2, num_layers=1, max_len=3).backward(
            np.zeros((3, 5), np.float32))
