"""CharTransformer against the same model built from torch.nn (float64): logits and every
parameter gradient, with handgrad's weights loaded into torch."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from handgrad.models import CharTransformer

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def _torch_twin(V, d_model, nhead, num_layers, ff, max_len, norm_first):
    nn = torch.nn

    class TorchCharTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, d_model)
            self.pos_embedding = nn.Embedding(max_len, d_model)
            layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout=0.0,
                                               activation="gelu", batch_first=True,
                                               norm_first=norm_first)
            self.encoder = nn.TransformerEncoder(layer, num_layers,
                                                 norm=nn.LayerNorm(d_model) if norm_first
                                                 else None, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, V)

        def forward(self, ids):
            T = ids.shape[-1]
            x = self.embedding(ids) + self.pos_embedding(torch.arange(T))
            mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
            return self.head(self.encoder(x, mask=mask, is_causal=True))

    return TorchCharTransformer().double()


@pytest.mark.parametrize("norm_first", [True, False])
def test_char_transformer_matches_torch(norm_first):
    sizes = dict(d_model=8, nhead=2, num_layers=2, dim_feedforward=12, max_len=6)
    ours = CharTransformer(7, norm_first=norm_first, dtype=np.float64, rng=0, **sizes)
    theirs = _torch_twin(7, 8, 2, 2, 12, 6, norm_first)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 7, size=(3, 5))
    logits_t = theirs(torch.from_numpy(ids))
    logits = ours(ids)
    g = rng.standard_normal(logits.shape)
    (logits_t * torch.from_numpy(g)).sum().backward()
    ours.backward(g)
    np.testing.assert_allclose(logits, logits_t.detach().numpy(), rtol=1e-7, atol=1e-10)
    torch_params = dict(theirs.named_parameters())
    assert set(torch_params) == {n for n, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, torch_params[name].grad.numpy(), rtol=1e-7,
                                   atol=1e-10, err_msg=name)
