"""Every feed-forward layer kind (and its settings): checker, ONNX Runtime and load agree."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
import handgrad.onnx

from .roundtrip import check_roundtrip

# (id, layer factory, shape of one sample)
CASES = [
    ("linear", lambda: hg.Linear(5, 3, rng=0), (5,)),
    ("linear-no-bias", lambda: hg.Linear(5, 3, bias=False, rng=0), (5,)),
    ("linear-3d", lambda: hg.Linear(5, 3, rng=0), (4, 5)),
    ("linear-3d-no-bias", lambda: hg.Linear(5, 3, bias=False, rng=0), (4, 5)),
    ("identity", lambda: hg.Identity(), (4,)),
    ("dropout", lambda: hg.Dropout(0.3), (4,)),
    ("conv", lambda: hg.Conv2d(3, 4, 3, rng=0), (3, 7, 6)),
    ("conv-stride-pad", lambda: hg.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), rng=0),
     (3, 7, 6)),
    ("conv-dilation-groups", lambda: hg.Conv2d(4, 6, 3, dilation=2, groups=2, padding=1,
                                               rng=0), (4, 7, 6)),
    ("conv-depthwise-no-bias", lambda: hg.Conv2d(3, 3, 3, groups=3, bias=False, rng=0),
     (3, 7, 6)),
    ("conv-same-even", lambda: hg.Conv2d(3, 2, 4, padding="same", dilation=(1, 2), rng=0),
     (3, 7, 6)),
    ("conv-valid", lambda: hg.Conv2d(3, 2, 2, padding="valid", rng=0), (3, 7, 6)),
    ("maxpool", lambda: hg.MaxPool2d(2), (3, 7, 6)),
    ("maxpool-pad-dilation", lambda: hg.MaxPool2d(3, 2, padding=1, dilation=(1, 2)), (3, 9, 9)),
    ("maxpool-ceil", lambda: hg.MaxPool2d(3, 2, padding=1, ceil_mode=True), (3, 8, 8)),
    ("avgpool", lambda: hg.AvgPool2d(2), (3, 7, 6)),
    ("avgpool-pad-exclude", lambda: hg.AvgPool2d(3, 2, padding=1, count_include_pad=False),
     (3, 7, 6)),
    ("avgpool-ceil", lambda: hg.AvgPool2d(3, 2, padding=1, ceil_mode=True), (3, 8, 8)),
    ("avgpool-ceil-exclude", lambda: hg.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                  count_include_pad=False), (3, 8, 8)),
    ("avgpool-divisor", lambda: hg.AvgPool2d(3, 2, padding=1, divisor_override=5), (3, 7, 7)),
    ("adaptive-avg-1", lambda: hg.AdaptiveAvgPool2d(1), (3, 7, 6)),
    ("adaptive-avg-even", lambda: hg.AdaptiveAvgPool2d((7, 3)), (3, 7, 6)),
    ("adaptive-avg-uneven", lambda: hg.AdaptiveAvgPool2d((3, 4)), (3, 7, 6)),
    ("adaptive-avg-none", lambda: hg.AdaptiveAvgPool2d((None, 4)), (3, 7, 6)),
    ("adaptive-max-1", lambda: hg.AdaptiveMaxPool2d(1), (3, 7, 6)),
    ("adaptive-max-even", lambda: hg.AdaptiveMaxPool2d((7, 2)), (3, 7, 6)),
    ("adaptive-max-uneven", lambda: hg.AdaptiveMaxPool2d((3, 4)), (3, 7, 6)),
    ("global-avg", lambda: hg.GlobalAvgPool2d(), (3, 7, 6)),
    ("global-avg-flatten", lambda: hg.GlobalAvgPool2d(flatten=True), (3, 7, 6)),
    ("batchnorm1d", lambda: hg.BatchNorm1d(4), (4,)),
    ("batchnorm1d-3d", lambda: hg.BatchNorm1d(4), (4, 5)),
    ("batchnorm2d", lambda: hg.BatchNorm2d(3), (3, 7, 6)),
    ("batchnorm2d-no-affine", lambda: hg.BatchNorm2d(3, affine=False, eps=1e-3), (3, 7, 6)),
    ("layernorm", lambda: hg.LayerNorm(6), (3, 6)),
    ("layernorm-2d", lambda: hg.LayerNorm((7, 6), eps=1e-4), (3, 7, 6)),
    ("layernorm-no-bias", lambda: hg.LayerNorm(6, bias=False), (3, 6)),
    ("layernorm-no-affine", lambda: hg.LayerNorm(6, elementwise_affine=False), (3, 6)),
    ("groupnorm", lambda: hg.GroupNorm(2, 4), (4, 5, 3)),
    ("groupnorm-2d", lambda: hg.GroupNorm(2, 4, eps=1e-3), (4,)),
    ("groupnorm-no-affine", lambda: hg.GroupNorm(4, 4, affine=False), (4, 5)),
    ("relu", lambda: hg.ReLU(), (3, 4)),
    ("leaky-relu", lambda: hg.LeakyReLU(0.2), (3, 4)),
    ("sigmoid", lambda: hg.Sigmoid(), (3, 4)),
    ("tanh", lambda: hg.Tanh(), (3, 4)),
    ("gelu", lambda: hg.GELU(), (3, 4)),
    ("gelu-tanh", lambda: hg.GELU("tanh"), (3, 4)),
    ("silu", lambda: hg.SiLU(), (3, 4)),
    ("elu", lambda: hg.ELU(0.7), (3, 4)),
    ("softmax", lambda: hg.Softmax(), (3, 4)),
    ("softmax-dim1", lambda: hg.Softmax(1), (3, 4)),
    ("log-softmax", lambda: hg.LogSoftmax(), (3, 4)),
    ("log-softmax-dim1", lambda: hg.LogSoftmax(dim=1), (3, 4)),
    ("flatten", lambda: hg.Flatten(), (3, 4, 2)),
    ("flatten-middle", lambda: hg.Flatten(1, 2), (3, 4, 2)),
    ("flatten-tail", lambda: hg.Flatten(2), (3, 4, 2)),
    ("flatten-batch", lambda: hg.Flatten(0, 1), (3, 4)),
    ("unflatten", lambda: hg.Unflatten(1, (2, 6)), (12,)),
    ("unflatten-middle", lambda: hg.Unflatten(1, (2, 2)), (4, 3)),
    ("unflatten-last", lambda: hg.Unflatten(-1, (3, 2)), (4, 6)),
]


@pytest.mark.parametrize("factory, sample", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_exports_and_loads(factory, sample, tmp_path):
    rng = np.random.default_rng(0)
    layer = factory()
    if isinstance(layer, (hg.BatchNorm1d, hg.BatchNorm2d)):  # statistics that are not 0/1
        layer.running_mean[...] = rng.standard_normal(layer.num_features)
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.num_features)
        if layer.affine:
            layer.weight.data[...] = rng.uniform(0.5, 2.0, layer.num_features)
            layer.bias.data[...] = rng.standard_normal(layer.num_features)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    x = rng.standard_normal((2, *sample), dtype=np.float32)
    others = [rng.standard_normal((n, *sample), dtype=np.float32) for n in (5, 1)]
    if isinstance(layer, hg.Flatten) and layer.start_dim == 0:
        others = []  # the batch axis is flattened away: the graph has a fixed batch
    check_roundtrip(layer, x, tmp_path, others, dynamic_batch=bool(others))


def test_batchnorm_without_running_stats_uses_batch_statistics(tmp_path):
    """Eval mode still normalizes with the batch's statistics; load does not map it back."""
    rng = np.random.default_rng(1)
    layer = hg.BatchNorm2d(3, track_running_stats=False)
    layer.weight.data[...] = rng.uniform(0.5, 2, 3)
    x = rng.standard_normal((4, 3, 5, 5), dtype=np.float32)
    check_roundtrip(layer, x, tmp_path, [rng.standard_normal((6, 3, 5, 5), dtype=np.float32)],
                    load_back=False)


@pytest.mark.parametrize("opset", [18, 20])
@pytest.mark.parametrize("factory", [lambda: hg.GELU(), lambda: hg.GELU("tanh"),
                                     lambda: hg.AdaptiveMaxPool2d((3, 4)),
                                     lambda: hg.BatchNorm1d(4, track_running_stats=False)])
def test_newer_opsets(factory, opset, tmp_path):
    """Opset 18 passes reduction axes as inputs; opset 20 has a Gelu operator."""
    rng = np.random.default_rng(2)
    layer = factory()
    shape = (2, 4, 7, 6) if isinstance(layer, hg.AdaptiveMaxPool2d) else (3, 4)
    x = rng.standard_normal(shape, dtype=np.float32)
    check_roundtrip(layer, x, tmp_path, opset=opset,
                    load_back=not isinstance(layer, hg.BatchNorm1d))


def test_float64_model_exports_as_float64(tmp_path):
    rng = np.random.default_rng(3)
    model = hg.Sequential(hg.Linear(4, 3, rng=0), hg.Tanh()).double()
    check_roundtrip(model, rng.standard_normal((2, 4)), tmp_path,
                    [rng.standard_normal((3, 4))])


def test_nested_containers(tmp_path):
    rng = np.random.default_rng(4)
    inner = hg.Sequential(hg.Conv2d(3, 3, 3, padding=1, rng=0), hg.BatchNorm2d(3), hg.ReLU())
    model = hg.Sequential(
        hg.Residual(inner),
        hg.Residual(hg.Sequential(hg.Conv2d(3, 4, 1, rng=1), hg.SiLU()),
                    hg.Conv2d(3, 4, 1, bias=False, rng=2)),
        hg.Sequential(hg.Residual(hg.Sequential(hg.Residual(hg.Identity()), hg.Tanh())),
                      hg.Flatten(), hg.Dropout(0.1), hg.Linear(4 * 5 * 5, 3, rng=3)),
        hg.LogSoftmax(dim=1),
    )
    x = rng.standard_normal((2, 3, 5, 5), dtype=np.float32)
    loaded = check_roundtrip(model, x, tmp_path, [rng.standard_normal((3, 3, 5, 5),
                                                                      dtype=np.float32)])
    assert isinstance(loaded, hg.Sequential)


def test_embedding(tmp_path):
    rng = np.random.default_rng(5)
    layer = hg.Embedding(9, 4, rng=0)
    ids = rng.integers(0, 9, (2, 5))
    loaded = check_roundtrip(layer, ids, tmp_path, [rng.integers(0, 9, (3, 5))])
    assert isinstance(loaded, hg.Embedding)


NEWER = [
    ("batchnorm3d", lambda: hg.BatchNorm3d(3), (3, 4, 3, 2)),
    ("batchnorm2d-no-bias", lambda: hg.BatchNorm2d(3, bias=False), (3, 4, 4)),
    ("groupnorm-no-bias", lambda: hg.GroupNorm(2, 4, bias=False), (4, 5)),
    ("instancenorm1d", lambda: hg.InstanceNorm1d(3), (3, 6)),
    ("instancenorm2d-affine", lambda: hg.InstanceNorm2d(3, affine=True), (3, 4, 5)),
    ("instancenorm3d-affine-no-bias", lambda: hg.InstanceNorm3d(3, affine=True, bias=False),
     (3, 4, 3, 2)),
    ("rmsnorm", lambda: hg.RMSNorm(5), (4, 5)),
    ("rmsnorm-2d-eps", lambda: hg.RMSNorm((4, 5), eps=1e-3), (4, 5)),
    ("rmsnorm-no-affine", lambda: hg.RMSNorm(5, elementwise_affine=False), (5,)),
    ("lrn-odd", lambda: hg.LocalResponseNorm(3, alpha=0.5, beta=0.6, k=1.5), (6, 3, 3)),
    ("lrn-even", lambda: hg.LocalResponseNorm(4, alpha=0.5, beta=0.6, k=1.5), (6, 3, 3)),
    ("lrn-odd-3d", lambda: hg.LocalResponseNorm(5), (6, 4)),
    ("lrn-even-5d", lambda: hg.LocalResponseNorm(2), (6, 2, 2, 2)),
]


@pytest.mark.parametrize("factory, sample", [c[1:] for c in NEWER], ids=[c[0] for c in NEWER])
def test_newer_normalization_layers(factory, sample, tmp_path):
    rng = np.random.default_rng(6)
    layer = factory()
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape)
    if isinstance(layer, hg.BatchNorm3d):
        layer.running_var[...] = rng.uniform(0.5, 2.0, 3)
    x = rng.standard_normal((2, *sample), dtype=np.float32)
    loaded = check_roundtrip(layer, x, tmp_path, [rng.standard_normal((3, *sample),
                                                                      dtype=np.float32)])
    assert type(loaded) is type(layer)


def test_instance_norm_unbatched_and_with_running_statistics(tmp_path):
    rng = np.random.default_rng(7)
    layer = hg.InstanceNorm1d(3, affine=True)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    check_roundtrip(layer, rng.standard_normal((3, 6), dtype=np.float32), tmp_path)
    tracked = hg.InstanceNorm2d(3, track_running_stats=True)
    tracked(rng.standard_normal((4, 3, 5, 5), dtype=np.float32))  # training: statistics move
    check_roundtrip(tracked, rng.standard_normal((2, 3, 5, 5), dtype=np.float32), tmp_path,
                    [rng.standard_normal((3, 3, 5, 5), dtype=np.float32)])


def test_bilinear_two_inputs(tmp_path):
    rng = np.random.default_rng(8)
    for bias, lead in [(True, ()), (False, (4,))]:
        layer = hg.Bilinear(3, 5, 2, bias=bias, rng=0)

        def args(n, lead=lead):
            return (rng.standard_normal((n, *lead, 3), dtype=np.float32),
                    rng.standard_normal((n, *lead, 5), dtype=np.float32))

        loaded = check_roundtrip(layer, args(2), tmp_path, [args(4)])
        assert isinstance(loaded, hg.Bilinear)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_fixed_length(mode, tmp_path):
    rng = np.random.default_rng(9)
    layer = hg.EmbeddingBag(9, 4, mode=mode, rng=0)
    loaded = check_roundtrip(layer, rng.integers(0, 9, (2, 5)), tmp_path,
                             [rng.integers(0, 9, (3, 5))])
    assert isinstance(loaded, hg.EmbeddingBag) and loaded.mode == mode


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_padding_and_weights(mode, tmp_path):
    rng = np.random.default_rng(10)
    layer = hg.EmbeddingBag(9, 4, mode=mode, padding_idx=2, rng=0)
    ids = np.array([[2, 2, 2], [1, 2, 3], [0, 4, 2]])  # an all-padding bag gives zeros
    check_roundtrip(layer, ids, tmp_path, [rng.integers(0, 9, (4, 3))], load_back=False)
    if mode == "sum":
        weights = rng.standard_normal((3, 3), dtype=np.float32)
        check_roundtrip(layer, (ids, None, weights), tmp_path,
                        [(rng.integers(0, 9, (5, 3)), None,
                          rng.standard_normal((5, 3), dtype=np.float32))], load_back=False)


REARRANGE = [
    ("dropout1d", lambda: hg.Dropout1d(0.3), (3, 4)),
    ("dropout2d", lambda: hg.Dropout2d(0.3), (3, 4, 4)),
    ("dropout3d", lambda: hg.Dropout3d(0.3), (3, 2, 2, 2)),
    ("alpha-dropout", lambda: hg.AlphaDropout(0.2), (5,)),
    ("feature-alpha-dropout", lambda: hg.FeatureAlphaDropout(0.2), (3, 4, 4)),
    ("pixel-shuffle", lambda: hg.PixelShuffle(2), (8, 3, 2)),
    ("pixel-shuffle-5d", lambda: hg.PixelShuffle(2), (3, 4, 2, 3)),
    ("pixel-unshuffle", lambda: hg.PixelUnshuffle(2), (3, 4, 6)),
    ("pixel-unshuffle-5d", lambda: hg.PixelUnshuffle(3), (2, 2, 3, 6)),
    ("channel-shuffle", lambda: hg.ChannelShuffle(3), (6, 3, 2)),
    ("channel-shuffle-3d", lambda: hg.ChannelShuffle(2), (6, 5)),
]


@pytest.mark.parametrize("factory, sample", [c[1:] for c in REARRANGE],
                         ids=[c[0] for c in REARRANGE])
def test_dropout_variants_and_rearrangements(factory, sample, tmp_path):
    rng = np.random.default_rng(12)
    layer = factory()
    x = rng.standard_normal((2, *sample), dtype=np.float32)
    loaded = check_roundtrip(layer, x, tmp_path, [rng.standard_normal((3, *sample),
                                                                      dtype=np.float32)])
    expected = hg.Dropout if "Dropout" in type(layer).__name__ else type(layer)
    assert type(loaded) is expected  # every dropout is the identity in eval mode


DISTANCES = [
    ("cosine", lambda: hg.CosineSimilarity(), (5, 3), (5, 3)),
    ("cosine-last-broadcast", lambda: hg.CosineSimilarity(dim=-1, eps=1e-4), (4, 5), (1, 5)),
    ("pairwise-2", lambda: hg.PairwiseDistance(), (5,), (5,)),
    ("pairwise-1-keepdim", lambda: hg.PairwiseDistance(1, keepdim=True), (5,), (5,)),
    ("pairwise-3", lambda: hg.PairwiseDistance(3.0, eps=1e-3), (4, 5), (4, 5)),
    ("pairwise-inf", lambda: hg.PairwiseDistance(float("inf")), (5,), (5,)),
]


@pytest.mark.parametrize("factory, shape1, shape2", [c[1:] for c in DISTANCES],
                         ids=[c[0] for c in DISTANCES])
def test_distances_of_two_inputs(factory, shape1, shape2, tmp_path):
    rng = np.random.default_rng(13)
    layer = factory()

    def args(n):
        return (rng.standard_normal((n, *shape1), dtype=np.float32),
                rng.standard_normal((n, *shape2), dtype=np.float32))

    loaded = check_roundtrip(layer, args(2), tmp_path, [args(4)])
    assert type(loaded) is type(layer)


ACTIVATIONS = [
    ("prelu", lambda: hg.PReLU()), ("prelu-per-channel", lambda: hg.PReLU(4, 0.1)),
    ("relu6", lambda: hg.ReLU6()), ("hardtanh", lambda: hg.Hardtanh(-2.0, 0.5)),
    ("hardswish", lambda: hg.Hardswish()), ("hardsigmoid", lambda: hg.Hardsigmoid()),
    ("softplus", lambda: hg.Softplus()), ("softplus-beta", lambda: hg.Softplus(2.0, 3.0)),
    ("softsign", lambda: hg.Softsign()), ("mish", lambda: hg.Mish()), ("selu", lambda: hg.SELU()),
    ("celu", lambda: hg.CELU(0.5)), ("glu", lambda: hg.GLU()), ("glu-dim1", lambda: hg.GLU(1)),
    ("logsigmoid", lambda: hg.LogSigmoid()), ("threshold", lambda: hg.Threshold(0.5, -2.0)),
    ("softmin", lambda: hg.Softmin(1)), ("softmin-implicit", lambda: hg.Softmin()),
    ("softmax-implicit", lambda: hg.Softmax()), ("tanhshrink", lambda: hg.Tanhshrink()),
    ("softshrink", lambda: hg.Softshrink(0.7)), ("hardshrink", lambda: hg.Hardshrink(0.7)),
]


@pytest.mark.parametrize("factory", [c[1] for c in ACTIVATIONS], ids=[c[0] for c in ACTIVATIONS])
@pytest.mark.parametrize("opset", [17, 18])
def test_more_activations(factory, opset, tmp_path):
    """Every activation (values of both signs, past the piecewise corners)."""
    rng = np.random.default_rng(14)
    layer = factory()
    x = 4 * rng.standard_normal((2, 4, 6), dtype=np.float32)
    loaded = check_roundtrip(layer, x, tmp_path, [4 * rng.standard_normal((3, 4, 6),
                                                                          dtype=np.float32)],
                             opset=opset)
    assert type(loaded) is type(layer)


def test_softmax2d(tmp_path):
    rng = np.random.default_rng(15)
    check_roundtrip(hg.Softmax2d(), rng.standard_normal((2, 3, 4, 4), dtype=np.float32),
                    tmp_path, [rng.standard_normal((1, 3, 4, 4), dtype=np.float32)])


ND = [
    ("conv1d", lambda: hg.Conv1d(3, 4, 3, padding=1, rng=0), (3, 7), 17),
    ("conv1d-same-groups", lambda: hg.Conv1d(4, 4, 4, padding="same", dilation=2, groups=2,
                                             rng=0), (4, 9), 17),
    ("conv1d-reflect", lambda: hg.Conv1d(3, 4, 3, padding=2, padding_mode="reflect", rng=0),
     (3, 7), 17),
    ("conv3d", lambda: hg.Conv3d(2, 3, (2, 3, 2), stride=(1, 2, 1), padding=(1, 1, 0), rng=0),
     (2, 4, 5, 4), 17),
    ("conv3d-same-replicate", lambda: hg.Conv3d(2, 2, 3, padding="same",
                                                padding_mode="replicate", rng=0),
     (2, 4, 4, 4), 17),
    ("conv2d-circular", lambda: hg.Conv2d(2, 2, 3, padding=1, padding_mode="circular", rng=0),
     (2, 5, 5), 19),
    ("maxpool1d-ceil", lambda: hg.MaxPool1d(3, 2, 1, ceil_mode=True), (3, 8), 17),
    ("maxpool3d-ceil", lambda: hg.MaxPool3d(2, ceil_mode=True), (2, 5, 5, 5), 17),
    ("avgpool1d", lambda: hg.AvgPool1d(3, 2, 1), (3, 8), 17),
    ("avgpool3d-exclude", lambda: hg.AvgPool3d(2, 2, 1, count_include_pad=False),
     (2, 4, 4, 4), 17),
    ("zeropad2d", lambda: hg.ZeroPad2d((1, 2, 0, 3)), (3, 4, 4), 17),
    ("constantpad1d", lambda: hg.ConstantPad1d((2, 1), 3.5), (3, 4), 17),
    ("constantpad3d", lambda: hg.ConstantPad3d(1, -1.0), (2, 2, 2, 2), 17),
    ("reflectionpad2d", lambda: hg.ReflectionPad2d(1), (3, 4, 4), 17),
    ("reflectionpad1d", lambda: hg.ReflectionPad1d((2, 1)), (3, 5), 17),
    ("replicationpad3d", lambda: hg.ReplicationPad3d(1), (3, 3, 3, 3), 17),
    ("replicationpad1d", lambda: hg.ReplicationPad1d(2), (3, 4), 17),
    ("circularpad1d", lambda: hg.CircularPad1d((1, 2)), (3, 4), 19),
    ("circularpad2d", lambda: hg.CircularPad2d(1), (3, 4, 4), 19),
    ("convtranspose2d", lambda: hg.ConvTranspose2d(3, 4, 3, stride=2, padding=1,
                                                   output_padding=1, rng=0), (3, 5, 5), 17),
    ("convtranspose2d-groups-dilation", lambda: hg.ConvTranspose2d(
        4, 4, (3, 2), stride=(2, 1), padding=(1, 0), groups=2, dilation=(1, 2), bias=False,
        rng=0), (4, 5, 5), 17),
    ("convtranspose1d", lambda: hg.ConvTranspose1d(3, 2, 4, stride=3, padding=1,
                                                   output_padding=2, rng=0), (3, 6), 17),
    ("convtranspose3d", lambda: hg.ConvTranspose3d(2, 2, 2, stride=2, rng=0), (2, 3, 3, 3), 17),
]


@pytest.mark.parametrize("factory, sample, opset", [c[1:] for c in ND], ids=[c[0] for c in ND])
def test_convolutions_pools_and_padding_of_any_rank(factory, sample, opset, tmp_path):
    rng = np.random.default_rng(16)
    layer = factory()
    x = rng.standard_normal((2, *sample), dtype=np.float32)
    loaded = check_roundtrip(layer, x, tmp_path, [rng.standard_normal((3, *sample),
                                                                      dtype=np.float32)],
                             opset=opset)
    layer.eval()
    loaded.eval()
    np.testing.assert_allclose(loaded(x), layer(x), rtol=1e-5, atol=1e-6)  # the round trip


def test_unbatched_convolutions(tmp_path):
    rng = np.random.default_rng(17)
    for layer, sample in [(hg.Conv1d(3, 2, 3, rng=0), (3, 7)),
                          (hg.Conv2d(2, 2, 3, padding=1, rng=0), (2, 5, 5)),
                          (hg.ConvTranspose1d(3, 2, 3, rng=0), (3, 6))]:
        check_roundtrip(layer, rng.standard_normal(sample, dtype=np.float32), tmp_path,
                        load_back=False, dynamic_batch=False)


def test_circular_padding_needs_opset_19(tmp_path):
    with pytest.raises(hg.onnx.UnsupportedLayerError, match="opset 19"):
        hg.onnx.export(hg.CircularPad1d(1), np.zeros((1, 2, 3), np.float32),
                       tmp_path / "m.onnx")


RESAMPLE = [
    ("lppool2d", lambda: hg.LPPool2d(2, 3, 2), (3, 7, 7)),
    ("lppool2d-p3-ceil", lambda: hg.LPPool2d(3.0, 2, ceil_mode=True), (3, 7, 7)),
    ("lppool1d", lambda: hg.LPPool1d(2, 3), (3, 9)),
    ("lppool3d", lambda: hg.LPPool3d(2, 2), (2, 4, 4, 4)),
    ("nearest-scale", lambda: hg.Upsample(scale_factor=1.7), (3, 4, 4)),
    ("nearest-size", lambda: hg.Upsample(size=(7, 5)), (3, 4, 4)),
    ("nearest-exact-recompute", lambda: hg.Upsample(scale_factor=(2.5, 1.5), mode="nearest-exact",
                                                    recompute_scale_factor=True), (3, 4, 4)),
    ("bilinear-scale", lambda: hg.Upsample(scale_factor=1.7, mode="bilinear"), (3, 4, 4)),
    ("bilinear-align-size", lambda: hg.Upsample(size=(7, 3), mode="bilinear",
                                                align_corners=True), (3, 4, 4)),
    ("linear-1d", lambda: hg.Upsample(scale_factor=3, mode="linear"), (3, 4)),
    ("trilinear", lambda: hg.Upsample(size=(3, 5, 2), mode="trilinear"), (2, 2, 3, 4)),
    ("nearest-3d", lambda: hg.Upsample(scale_factor=2), (2, 2, 3, 4)),
    ("bicubic", lambda: hg.Upsample(scale_factor=2, mode="bicubic"), (3, 4, 4)),
    ("upsampling-nearest2d", lambda: hg.UpsamplingNearest2d(scale_factor=2), (3, 4, 4)),
    ("upsampling-bilinear2d", lambda: hg.UpsamplingBilinear2d(size=(6, 9)), (3, 4, 4)),
]


@pytest.mark.parametrize("factory, sample", [c[1:] for c in RESAMPLE],
                         ids=[c[0] for c in RESAMPLE])
def test_lp_pools_and_upsampling(factory, sample, tmp_path):
    """Export only: load does not map Resize or the LP-pool formula back yet."""
    rng = np.random.default_rng(18)
    layer = factory()
    x = np.abs(rng.standard_normal((2, *sample), dtype=np.float32))  # x^p: positive inputs
    check_roundtrip(layer, x, tmp_path, [np.abs(rng.standard_normal((3, *sample),
                                                                    dtype=np.float32))],
                    load_back=False)


ADAPTIVE_ND = [
    ("avg1d-global", lambda: hg.AdaptiveAvgPool1d(1), (3, 9)),
    ("avg1d-even", lambda: hg.AdaptiveAvgPool1d(3), (3, 9)),
    ("avg1d-uneven", lambda: hg.AdaptiveAvgPool1d(4), (3, 9)),
    ("max1d-even", lambda: hg.AdaptiveMaxPool1d(3), (3, 9)),
    ("max1d-uneven", lambda: hg.AdaptiveMaxPool1d(4), (3, 9)),
    ("avg3d-global", lambda: hg.AdaptiveAvgPool3d(1), (2, 4, 6, 5)),
    ("avg3d-uneven", lambda: hg.AdaptiveAvgPool3d((3, 2, 4)), (2, 4, 6, 5)),
    ("avg3d-none", lambda: hg.AdaptiveAvgPool3d((2, None, 3)), (2, 4, 6, 5)),
    ("max3d-global", lambda: hg.AdaptiveMaxPool3d(1), (2, 4, 6, 5)),
    ("max3d-even", lambda: hg.AdaptiveMaxPool3d((2, 3, 5)), (2, 4, 6, 5)),
]


@pytest.mark.parametrize("factory, sample", [c[1:] for c in ADAPTIVE_ND],
                         ids=[c[0] for c in ADAPTIVE_ND])
def test_adaptive_pools_1d_3d(factory, sample, tmp_path):
    """Export only (load maps the 2-d adaptive pools back, not these yet)."""
    rng = np.random.default_rng(19)
    layer = factory()
    check_roundtrip(layer, rng.standard_normal((2, *sample), dtype=np.float32), tmp_path,
                    [rng.standard_normal((3, *sample), dtype=np.float32)], load_back=False)


def test_uneven_3d_adaptive_max_is_refused(tmp_path):
    with pytest.raises(hg.onnx.UnsupportedLayerError, match="uneven bins of a 3-d"):
        hg.onnx.export(hg.AdaptiveMaxPool3d(2), np.zeros((1, 2, 5, 5, 5), np.float32),
                       tmp_path / "m.onnx")


@pytest.mark.parametrize("layer, sample", [
    (lambda: hg.Unfold(2), (3, 4, 5)),
    (lambda: hg.Unfold((2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), (3, 6, 7)),
    (lambda: hg.Fold((4, 5), 2), (12, 12)),
    (lambda: hg.Fold((7, 8), (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), (18, 24)),
    (lambda: hg.Fold((6, 6), 2, stride=3), (8, 4)),
], ids=["unfold", "unfold-dilation-padding-stride", "fold", "fold-dilation-padding-stride",
        "fold-gaps"])
def test_fold_and_unfold(layer, sample, tmp_path):
    """One-hot grouped (transposed) convolutions: exact. Export only."""
    rng = np.random.default_rng(20)
    check_roundtrip(layer(), rng.standard_normal((2, *sample), dtype=np.float32), tmp_path,
                    [rng.standard_normal((3, *sample), dtype=np.float32)], load_back=False)
