"""The benchmark workloads, defined once for both frameworks.

Each workload builds a handgrad model or layer from a fixed seed; the PyTorch side builds the
same handgrad object, ports it with :mod:`benchmarks.torch_port` (same layers, same weights)
and times the equivalent torch computation on the same float32 inputs. ``build`` returns a
zero-argument ``step`` callable; one call is one timed step.

A handgrad piece that does not exist yet raises :class:`Missing`, which the harness reports
instead of crashing. Fallbacks used while a piece is missing are appended to :data:`NOTES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SEED = 0
NOTES: list[str] = []


class Missing(Exception):
    """A piece of handgrad (or of torch) that this workload needs is not there."""


def need(module: str, attr: str):
    """``module.attr``, or :class:`Missing` naming it."""
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise Missing(module) from err
    obj = getattr(mod, attr, None)
    if obj is None:
        raise Missing(f"{module}.{attr}")
    return obj


@dataclass
class Workload:
    name: str
    group: str  # "train" (model training step), "eval" (model forward), "layer"
    params: dict
    make: Callable  # make(framework, params) -> step callable
    flops: Callable | None = None  # flops(params) -> nominal FLOP per step
    sweep: dict = field(default_factory=dict)  # {"batch": [..]} / {"T": [..]}
    doc: str = ""


REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> None:
    REGISTRY[workload.name] = workload


# ----------------------------------------------------------------------------- shared pieces
def _rng(offset: int = 0):
    return np.random.default_rng(SEED + offset)


def _randn(shape, offset=0):
    return _rng(offset).standard_normal(shape, dtype=np.float32)


class FallbackAdam:
    """In-place Adam (PyTorch's formula), used only while handgrad.optim.Adam is missing."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.tmp = [np.empty_like(p.data) for p in self.params]
        self.t = 0

    def step(self):
        self.t += 1
        bc1 = 1 - self.b1 ** self.t
        bc2 = 1 - self.b2 ** self.t
        for p, m, v, tmp in zip(self.params, self.m, self.v, self.tmp):
            if p.grad is None:
                continue
            g = p.grad
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - self.b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp *= 1 / bc2 ** 0.5
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= self.lr / bc1
            p.data -= tmp

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def hg_adam(params):
    params = list(params)
    try:
        adam = need("handgrad.optim", "Adam")
    except Missing:
        NOTES.append("handgrad.optim.Adam missing: hand-written Adam in the benchmark")
        return FallbackAdam(params)
    return adam(params, lr=1e-3)


def hg_cross_entropy():
    return need("handgrad.losses", "CrossEntropyLoss")()


def _torch():
    try:
        import torch
    except ImportError as err:
        raise Missing("torch") from err
    return torch


def _hg_classifier_step(model, x, target, train: bool):
    if not train:
        model.eval()
        return lambda: model(x)
    loss, opt = hg_cross_entropy(), hg_adam(model.parameters())
    # The input is data: like the torch side (no requires_grad), no input gradient.
    model.needs_input_grad = False

    def step():
        model.zero_grad()
        loss(model(x), target)
        model.backward(loss.backward())
        opt.step()

    return step


def _torch_classifier_step(model, x, target, train: bool):
    torch = _torch()
    x, target = torch.from_numpy(x), torch.from_numpy(target)
    if not train:
        model.eval()

        def infer():
            with torch.no_grad():
                model(x)

        return infer
    loss, opt = torch.nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss(model(x), target).backward()
        opt.step()

    return step


def _model_workloads(name, make_model, input_shape, num_classes, fwd_flops, sweep, doc):
    """Register ``name`` (training step) and ``name_eval`` (eval forward)."""

    def make(framework, params, train):
        model = make_model()
        shape = (params["batch"],) + tuple(input_shape)
        x = _randn(shape, 1)
        target = _rng(2).integers(0, num_classes, params["batch"]).astype(np.int64)
        if framework == "handgrad":
            return _hg_classifier_step(model, x, target, train)
        from .torch_port import port
        return _torch_classifier_step(port(model), x, target, train)

    register(Workload(name, "train", {"batch": DEFAULT_BATCH[name]},
                      lambda fw, p: make(fw, p, True),
                      lambda p: 3 * fwd_flops * p["batch"], {"batch": sweep}, doc))
    register(Workload(f"{name}_eval", "eval", {"batch": DEFAULT_BATCH[name]},
                      lambda fw, p: make(fw, p, False),
                      lambda p: fwd_flops * p["batch"], {}, doc + " (eval forward)"))


DEFAULT_BATCH = {"mlp": 128, "lenet": 64, "resnet20": 32}


# ----------------------------------------------------------------------------- models
def _make_mlp():
    import handgrad as hg
    rng = _rng(10)
    return hg.Sequential(hg.Linear(784, 256, rng=rng), hg.ReLU(), hg.Linear(256, 256, rng=rng),
                         hg.ReLU(), hg.Linear(256, 10, rng=rng))


def _make_lenet():
    import handgrad  # noqa: F401
    lenet5 = need("handgrad.models", "lenet5")
    return _seeded(lambda: lenet5(num_classes=10))


def _make_resnet20():
    import handgrad  # noqa: F401
    resnet20 = need("handgrad.models", "resnet20")
    return _seeded(lambda: resnet20(num_classes=10))


def _seeded(build):
    """Build with handgrad's default generator seeded, restoring nothing (own process)."""
    import handgrad as hg
    hg.manual_seed(SEED)
    return build()


MLP_FLOPS = 2 * (784 * 256 + 256 * 256 + 256 * 10)
# LeNet-5 MACs/sample: conv1 6*25*28*28, conv2 16*150*10*10, fc 400*120 + 120*84 + 84*10
LENET_FLOPS = 2 * (6 * 25 * 784 + 16 * 150 * 100 + 400 * 120 + 120 * 84 + 84 * 10)
# ResNet-20 MACs/sample: stem, 3 stages of 6 convs (first of stages 2, 3 strided) + 2 1x1
RESNET20_FLOPS = 2 * (
    3 * 16 * 9 * 1024 + 6 * 16 * 16 * 9 * 1024
    + 16 * 32 * 9 * 256 + 5 * 32 * 32 * 9 * 256 + 16 * 32 * 256
    + 32 * 64 * 9 * 64 + 5 * 64 * 64 * 9 * 64 + 32 * 64 * 64 + 64 * 10)

_model_workloads("mlp", _make_mlp, (784,), 10, MLP_FLOPS, [32, 128, 512],
                 "Linear 784-256-256-10 + ReLU, batch 128x784")
_model_workloads("lenet", _make_lenet, (1, 28, 28), 10, LENET_FLOPS, [16, 64, 256],
                 "LeNet-5, 64x1x28x28")
_model_workloads("resnet20", _make_resnet20, (3, 32, 32), 10, RESNET20_FLOPS, [8, 32, 64],
                 "CIFAR ResNet-20, 32x3x32x32")


# ----------------------------------------------------------------------------- recurrent models
VOCAB, EMBED, HIDDEN = 65, 64, 256


def _gates(cell: str) -> int:
    return {"LSTM": 4, "GRU": 3, "RNN": 1}[cell]


def _rnn_flops(cell, T, N, inp, hidden):
    return 2 * T * N * (inp + hidden) * _gates(cell) * hidden


def _make_char_model(cell):
    import handgrad as hg
    rng = _rng(20)
    embedding = need("handgrad", "Embedding")(VOCAB, EMBED, rng=rng)
    rnn = need("handgrad", cell)(EMBED, HIDDEN, rng=rng)
    head = hg.Linear(HIDDEN, VOCAB, rng=rng)
    return embedding, rnn, head


def _make_char(cell, framework, params, train):
    T, N = params["T"], params["batch"]
    tokens = _rng(3).integers(0, VOCAB, (T, N)).astype(np.int64)
    targets = _rng(4).integers(0, VOCAB, (T * N,)).astype(np.int64)
    layers = _make_char_model(cell)
    embedding, rnn, head = layers
    if framework == "handgrad":
        if not train:
            for layer in layers:
                layer.eval()
            return lambda: head(rnn(embedding(tokens)))
        loss = hg_cross_entropy()
        opt = hg_adam([p for layer in layers for p in layer.parameters()])

        def step():
            for layer in layers:
                layer.zero_grad()
            logits = head(rnn(embedding(tokens)))  # (T, N, V)
            loss(logits.reshape(T * N, VOCAB), targets)
            grad = loss.backward().reshape(T, N, VOCAB)
            embedding.backward(rnn.backward(head.backward(grad)))
            opt.step()

        return step
    torch = _torch()
    from .torch_port import port
    t_emb, t_rnn, t_head = (port(layer) for layer in layers)
    t_tokens, t_targets = torch.from_numpy(tokens), torch.from_numpy(targets)
    modules = torch.nn.ModuleList([t_emb, t_rnn, t_head])
    if not train:
        modules.eval()

        def infer():
            with torch.no_grad():
                t_head(t_rnn(t_emb(t_tokens))[0])

        return infer
    loss = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(modules.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = t_head(t_rnn(t_emb(t_tokens))[0])
        loss(logits.reshape(T * N, VOCAB), t_targets).backward()
        opt.step()

    return step


def _char_flops(cell, p, factor):
    T, N = p["T"], p["batch"]
    return factor * (_rnn_flops(cell, T, N, EMBED, HIDDEN) + 2 * T * N * HIDDEN * VOCAB)


for _cell in ("LSTM", "GRU", "RNN"):
    _name = _cell.lower()
    register(Workload(
        _name, "train", {"batch": 32, "T": 64},
        lambda fw, p, c=_cell: _make_char(c, fw, p, True),
        lambda p, c=_cell: _char_flops(c, p, 3), {"T": [16, 64, 256]},
        f"Embedding(65, 64) -> {_cell}(64, 256) -> Linear(256, 65), full BPTT, 32 seq x 64"))
    register(Workload(
        f"{_name}_eval", "eval", {"batch": 32, "T": 64},
        lambda fw, p, c=_cell: _make_char(c, fw, p, False),
        lambda p, c=_cell: _char_flops(c, p, 1), {},
        f"{_cell} char model, eval forward"))


# ----------------------------------------------------------------------------- layers
def _layer_step(framework, layer, x, grad_out, unpack=None):
    """forward + backward of one layer with a fixed upstream gradient."""
    if framework == "handgrad":
        def step():
            layer.zero_grad()
            layer(x)
            layer.backward(grad_out)
        return step
    torch = _torch()
    from .torch_port import port
    module = port(layer)
    tx = torch.from_numpy(x).requires_grad_(True)
    tg = torch.from_numpy(grad_out)

    def torch_step():
        module.zero_grad(set_to_none=True)
        tx.grad = None
        y = module(tx)
        if unpack is not None:
            y = y[unpack]
        y.backward(tg)

    return torch_step


def _register_layer(name, make_layer, in_shape, out_shape, flops, doc, sweep=None,
                    unpack=None, params=None):
    def make(framework, p):
        layer = make_layer(p)
        x = _randn(in_shape(p), 5)
        grad_out = _randn(out_shape(p), 6)
        return _layer_step(framework, layer, x, grad_out, unpack)

    register(Workload(name, "layer", params or {"batch": 32}, make, flops, sweep or {}, doc))


def _linear(p):
    import handgrad as hg
    return hg.Linear(1024, 1024, rng=_rng(30))


_register_layer("Linear", _linear, lambda p: (p["batch"], 1024), lambda p: (p["batch"], 1024),
                lambda p: 3 * 2 * p["batch"] * 1024 * 1024, "Linear(1024, 1024), 256x1024",
                params={"batch": 256})


def _conv_case(cin, cout, size, batch=32):
    def make(p):
        import handgrad as hg
        return hg.Conv2d(cin, cout, 3, padding=1, rng=_rng(31))

    _register_layer(
        f"Conv2d_{cin}x{cout}_{size}px", make, lambda p: (p["batch"], cin, size, size),
        lambda p: (p["batch"], cout, size, size),
        lambda p: 3 * 2 * p["batch"] * cout * cin * 9 * size * size,
        f"Conv2d({cin}, {cout}, 3, padding=1), {batch}x{cin}x{size}x{size}",
        params={"batch": batch})


_conv_case(3, 16, 32)
_conv_case(16, 32, 32)
_conv_case(16, 16, 32)
_conv_case(64, 64, 8)


def _maxpool(p):
    return need("handgrad", "MaxPool2d")(2)


_register_layer("MaxPool2d", _maxpool, lambda p: (p["batch"], 16, 32, 32),
                lambda p: (p["batch"], 16, 16, 16), None, "MaxPool2d(2), 32x16x32x32")


def _batchnorm(p):
    return need("handgrad", "BatchNorm2d")(16)


_register_layer("BatchNorm2d", _batchnorm, lambda p: (p["batch"], 16, 32, 32),
                lambda p: (p["batch"], 16, 32, 32), None, "BatchNorm2d(16), 32x16x32x32")


for _cell in ("LSTM", "GRU", "RNN"):
    _register_layer(
        f"{_cell}_layer",
        lambda p, c=_cell: need("handgrad", c)(EMBED, HIDDEN, rng=_rng(32)),
        lambda p: (p["T"], p["batch"], EMBED), lambda p: (p["T"], p["batch"], HIDDEN),
        lambda p, c=_cell: 3 * _rnn_flops(c, p["T"], p["batch"], EMBED, HIDDEN),
        f"{_cell}(64, 256) forward+backward, T=64, N=32", sweep={"T": [16, 64, 256]},
        unpack=0, params={"batch": 32, "T": 64})


def _make_cross_entropy(framework, p):
    n, classes = p["batch"], 1000
    logits = _randn((n, classes), 7)
    target = _rng(8).integers(0, classes, n).astype(np.int64)
    if framework == "handgrad":
        loss = hg_cross_entropy()

        def step():
            loss(logits, target)
            loss.backward()

        return step
    torch = _torch()
    tx = torch.from_numpy(logits).requires_grad_(True)
    tt = torch.from_numpy(target)
    loss_t = torch.nn.CrossEntropyLoss()

    def torch_step():
        tx.grad = None
        loss_t(tx, tt).backward()

    return torch_step


register(Workload("CrossEntropy", "layer", {"batch": 512}, _make_cross_entropy, None, {},
                  "softmax cross-entropy, 512x1000 logits, forward+backward"))


def _make_adam(framework, p):
    tensors = p["tensors"]
    size = 1_000_000 // tensors
    rng = _rng(9)
    data = [rng.standard_normal(size, dtype=np.float32) for _ in range(tensors)]
    grads = [rng.standard_normal(size, dtype=np.float32) for _ in range(tensors)]
    if framework == "handgrad":
        from handgrad import Parameter
        params = []
        for d, g in zip(data, grads):
            param = Parameter(d)
            param.grad = g
            params.append(param)
        opt = hg_adam(params)
        return opt.step
    torch = _torch()
    params = []
    for d, g in zip(data, grads):
        param = torch.nn.Parameter(torch.from_numpy(d))
        param.grad = torch.from_numpy(g)
        params.append(param)
    opt = torch.optim.Adam(params, lr=1e-3)
    return opt.step


for _tensors in (10, 100):
    register(Workload(f"Adam_1M_{_tensors}", "layer", {"tensors": _tensors}, _make_adam, None,
                      {}, f"Adam step, 1M parameters in {_tensors} tensors"))
