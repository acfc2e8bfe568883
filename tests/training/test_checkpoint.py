"""handgrad.save / handgrad.load: round trips, atomic writes, refusing bad files."""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad
from handgrad.random import generator_from_state, rng_state, set_rng_state
from handgrad.training import checkpoint


def _model(hidden=5, seed=0):
    return handgrad.Sequential(
        handgrad.Linear(4, hidden, rng=seed), handgrad.ReLU(), handgrad.Linear(hidden, 3, rng=seed)
    )


def _assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_of_nested_values(tmp_path):
    obj = {
        "model": dict(_model().state_dict()),
        "epoch": 3,
        "lr": 1e-3,
        "name": "run-1",
        "done": False,
        "nothing": None,
        "big": 2**100 + 7,
        "neg": -(2**70),
        "weird": [float("nan"), float("inf"), -float("inf")],
        "tuple": (1, "a", np.arange(3, dtype=np.int64)),
        "int_keys": {0: {"step": 5, "exp_avg": np.ones((2, 2), np.float32)}, 1: {}},
        "mixed_keys": {None: 1, True: 2, 2.5: 3},
        "arrays": [np.zeros((0, 3), np.float64), np.array(True), np.array(["ab", "c"]),
                   np.arange(6, dtype=np.uint8).reshape(2, 3), np.array([1 + 2j])],
        "scalars": [np.float32(1.5), np.int64(-4), np.bool_(True)],
        "history": {"loss": [0.5, 0.25], "acc": [0.9, 0.95]},
    }
    path = tmp_path / "ckpt.npz"
    handgrad.save(obj, path)
    back = handgrad.load(path)
    _assert_same(obj, back)
    assert back["scalars"][0].dtype == np.float32
    assert back["model"]["0.weight"].dtype == np.float32


def test_save_layer_and_load_into_fresh_model(tmp_path):
    model = _model(seed=1)
    handgrad.save(model, tmp_path / "m.npz")
    state = handgrad.load(tmp_path / "m.npz")
    assert list(state) == list(model.state_dict())
    other = _model(seed=2)
    handgrad.load_into(other, tmp_path / "m.npz")
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), other(x))
    # a layer nested in a dict is stored as its state_dict as well
    handgrad.save({"model": model, "epoch": 1}, tmp_path / "c.npz")
    third = _model(seed=3)
    assert handgrad.load_into(third, tmp_path / "c.npz")["epoch"] == 1
    np.testing.assert_array_equal(model(x), third(x))


def test_load_into_different_architecture_names_keys_and_shapes(tmp_path):
    handgrad.save({"model": _model(hidden=5)}, tmp_path / "c.npz")
    wider = _model(hidden=8)
    with pytest.raises(ValueError) as info:
        handgrad.load_into(wider, tmp_path / "c.npz")
    message = str(info.value)
    assert "c.npz" in message
    assert "0.weight: expected shape (8, 4), got (5, 4)" in message
    deeper = handgrad.Sequential(*_model(), handgrad.Linear(3, 2))
    with pytest.raises(ValueError, match=r"missing keys: 3\.weight, 3\.bias"):
        handgrad.load_into(deeper, tmp_path / "c.npz")


def test_generator_state_round_trip(tmp_path):
    gen = np.random.default_rng(123)
    gen.random(5)
    state = rng_state(gen)
    json.dumps(state)  # JSON-able
    assert isinstance(state["state"]["state"], str)  # the 128-bit int kept exactly
    expected = gen.random(4)
    np.testing.assert_array_equal(generator_from_state(state).random(4), expected)
    other = set_rng_state(np.random.default_rng(9), state)
    np.testing.assert_array_equal(other.random(4), expected)
    mt = np.random.Generator(np.random.MT19937(5))
    mt_state = rng_state(mt)
    np.testing.assert_array_equal(generator_from_state(mt_state).random(3), mt.random(3))
    with pytest.raises(ValueError, match="MT19937"):
        set_rng_state(np.random.default_rng(0), mt_state)

    # Generators and raw bit_generator.state dicts inside a checkpoint
    gen2 = np.random.default_rng(77)
    handgrad.save({"rng": gen2, "raw": gen2.bit_generator.state}, tmp_path / "g.npz")
    back = handgrad.load(tmp_path / "g.npz")
    assert isinstance(back["rng"], np.random.Generator)
    assert back["raw"] == gen2.bit_generator.state
    np.testing.assert_array_equal(back["rng"].random(3), gen2.random(3))


def test_real_optimizer_state_round_trip(tmp_path):
    optim = handgrad.optim
    if not hasattr(optim, "Adam"):
        pytest.skip("handgrad.optim.Adam not available yet")
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    for _ in range(2):
        model.zero_grad()
        y = model(x)
        model.backward(np.ones_like(y))
        opt.step()
    handgrad.save({"model": model, "optimizer": opt.state_dict()}, tmp_path / "o.npz")
    back = handgrad.load(tmp_path / "o.npz")
    _assert_same(_plain(opt.state_dict()), _plain(back["optimizer"]))


def _plain(value):
    """Normalise OrderedDicts etc. to plain dicts for comparison."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def test_unsupported_values_raise_and_write_nothing(tmp_path):
    path = tmp_path / "x.npz"
    with pytest.raises(TypeError, match=r"object.*obj\['bad'\]"):
        handgrad.save({"bad": np.array([object()], dtype=object)}, path)
    with pytest.raises(TypeError, match="set"):
        handgrad.save({"s": {1, 2}}, path)
    with pytest.raises(TypeError, match="Parameter"):
        handgrad.save({"p": next(_model().parameters())}, path)
    with pytest.raises(TypeError, match="dict or a Layer"):
        handgrad.save([1, 2], path)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    handgrad.save({"epoch": 1, "w": np.ones(3)}, path)
    before = path.read_bytes()

    def disk_full(file, arrays, compress):
        file.write(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_arrays", disk_full)
    with pytest.raises(OSError, match="last.npz.*No space left.*unchanged") as info:
        handgrad.save({"epoch": 2, "w": np.zeros(3)}, path)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]  # no temporary file left
    assert handgrad.load(path)["epoch"] == 1


def test_failure_at_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    handgrad.save({"epoch": 1}, path)

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(checkpoint.os, "replace", broken_replace)
    with pytest.raises(OSError):
        handgrad.save({"epoch": 2}, path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]
    assert handgrad.load(path)["epoch"] == 1


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        handgrad.save({"a": 1}, tmp_path / "nope" / "c.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        handgrad.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("cut", [0, 10, 0.5, -1])
def test_truncated_checkpoint_is_a_clear_value_error(tmp_path, cut):
    path = tmp_path / "c.npz"
    handgrad.save({"w": np.arange(100.0), "epoch": 3}, path)
    data = path.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (len(data) + cut if cut < 0 else cut)
    path.write_bytes(data[:n])
    with pytest.raises(ValueError, match=r"c\.npz is not a valid handgrad checkpoint"):
        handgrad.load(path)


def test_corrupt_checkpoint_is_a_clear_value_error(tmp_path):
    path = tmp_path / "c.npz"
    handgrad.save({"w": np.arange(1000.0)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip bits inside the array data: the zip CRC catches it
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="c.npz.*corrupt"):
        handgrad.load(path)
    path.write_text("hello, I am not a checkpoint")
    with pytest.raises(ValueError, match="zip"):
        handgrad.load(path)


def test_plain_npz_without_metadata_and_bad_metadata_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    with pytest.raises(ValueError, match="not written by handgrad.save"):
        handgrad.load(tmp_path / "plain.npz")
    meta = json.dumps({"format": "handgrad-checkpoint", "version": 99, "root": None})
    np.savez(tmp_path / "future.npz", __handgrad__=np.frombuffer(meta.encode(), np.uint8))
    with pytest.raises(ValueError, match="version 99"):
        handgrad.load(tmp_path / "future.npz")


def test_pickled_object_array_is_refused(tmp_path):
    """A file whose member holds a pickle (object array) must never be unpickled."""
    path = tmp_path / "evil.npz"
    handgrad.save({"w": np.ones(2)}, path)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("a0_evil.npy", buffer.getvalue())
    with pytest.raises(ValueError, match="pickled data"):
        handgrad.load(path)
    assert os.path.exists(path)


def test_resume_continues_exactly(tmp_path):
    """Save mid-run, restore into fresh objects: the next steps give identical parameters."""
    optim = handgrad.optim
    if not hasattr(optim, "Adam"):
        pytest.skip("handgrad.optim.Adam not available yet")
    from handgrad.data import DataLoader

    data = np.random.default_rng(0)
    x = data.standard_normal((40, 4)).astype(np.float32)
    t = data.standard_normal((40, 3)).astype(np.float32)

    def make(seed):
        model = handgrad.Sequential(handgrad.Linear(4, 6, rng=seed),
                                    handgrad.Dropout(0.3, rng=seed),
                                    handgrad.Linear(6, 3, rng=seed))
        opt = optim.Adam(model.parameters(), lr=0.01)
        loader = DataLoader((x, t), batch_size=16, shuffle=True, rng=seed)
        return model, opt, loader

    def epoch(model, opt, loader):
        for xb, tb in loader:
            opt.zero_grad()
            y = model(xb)
            model.backward(2 * (y - tb) / y.size)
            opt.step()

    model, opt, loader = make(1)
    epoch(model, opt, loader)
    handgrad.save({"model": model, "optimizer": opt.state_dict(), "loader": loader.state_dict(),
                   "dropout_rng": model[1].rng, "epoch": 1}, tmp_path / "last.npz")
    epoch(model, opt, loader)
    epoch(model, opt, loader)

    ckpt = handgrad.load(tmp_path / "last.npz")
    model2, opt2, loader2 = make(2)  # different seeds: everything must come from the file
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    loader2.load_state_dict(ckpt["loader"])
    model2[1].rng = ckpt["dropout_rng"]
    epoch(model2, opt2, loader2)
    epoch(model2, opt2, loader2)
    for (name, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(allow_nan=False),
    st.text(max_size=5),
    st.builds(lambda shape, seed, dt: np.random.default_rng(seed).standard_normal(shape)
              .astype(dt), st.lists(st.integers(0, 3), max_size=3).map(tuple),
              st.integers(0, 99), st.sampled_from([np.float32, np.float64, np.int16]))
)
_keys = st.one_of(st.text(max_size=4), st.integers(-5, 5))
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=10,
)


@given(tree=st.dictionaries(st.text(max_size=4), _trees, max_size=4))
def test_round_trip_property(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("ckpt") / "t.npz"
    handgrad.save(tree, path)
    _assert_same(tree, handgrad.load(path))


def test_loading_a_directory_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"is a directory.*last\.npz"):
        handgrad.load(tmp_path)


def test_members_that_are_not_npy_arrays_are_refused(tmp_path):
    meta = json.dumps({"format": "handgrad-checkpoint", "version": 1, "root": None})
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as archive:
        archive.writestr("__handgrad__", meta)  # raw bytes: np.load returns bytes, not an array
    with pytest.raises(ValueError, match=r"raw\.npz.*'__handgrad__' is not a \.npy array"):
        handgrad.load(tmp_path / "raw.npz")
    path = tmp_path / "extra.npz"
    handgrad.save({"w": np.ones(2)}, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", b"hello")
    with pytest.raises(ValueError, match=r"extra\.npz.*'notes\.txt' is not a \.npy array"):
        handgrad.load(path)
    np.savez(tmp_path / "wide.npz", __handgrad__=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"wide\.npz.*float64 data of shape \(2, 2\)"):
        handgrad.load(tmp_path / "wide.npz")


SLOW_SAVE = """
import sys, time
import numpy as np
import handgrad
from handgrad.training import checkpoint

def slow(file, arrays, compress):
    file.write(b"PK\\x03\\x04partial")
    file.flush()
    print("writing", flush=True)
    time.sleep(60)

checkpoint._write_arrays = slow
handgrad.save({"epoch": 2}, sys.argv[1])
"""


def test_save_killed_mid_write_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "last.npz"
    handgrad.save({"epoch": 1}, path)
    child = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        temporaries = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temporaries) == 1
        assert checkpoint.remove_stale_temporaries(path) == []  # a live save keeps its file
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    assert temporaries[0].exists() and handgrad.load(path)["epoch"] == 1
    handgrad.save({"epoch": 3}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]
    assert handgrad.load(path)["epoch"] == 3


def test_load_removes_stale_temporaries_of_its_path_only(tmp_path):
    path = tmp_path / "last.npz"
    handgrad.save({"epoch": 1}, path)
    stale = tmp_path / ".last.npz.abcd1234.tmp"
    other = tmp_path / ".last.npz.bak.abcd1234.tmp"  # another path's temporary
    stale.write_bytes(b"PK\x03\x04partial")
    other.write_bytes(b"PK\x03\x04partial")
    assert handgrad.load(path)["epoch"] == 1
    assert not stale.exists() and other.exists()


# ---------------------------------------------------------------- audit: bad paths and files
def _write_meta(path, meta: bytes, **arrays):
    np.savez(path, __handgrad__=np.frombuffer(meta, np.uint8), **arrays)


@pytest.mark.parametrize("path", [None, 3, ["a.npz"]])
def test_paths_that_are_not_paths_are_type_errors(path):
    with pytest.raises(TypeError, match=r"handgrad.save: expected a file path"):
        handgrad.save({"a": 1}, path)
    with pytest.raises(TypeError, match=r"handgrad.load: expected a file path"):
        handgrad.load(path)


def test_saving_onto_a_directory_names_it(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"handgrad.save: .* is a directory"):
        handgrad.save({"a": 1}, tmp_path)
    assert os.listdir(tmp_path) == []


def test_self_containing_objects_are_a_clear_error(tmp_path):
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="handgrad.save: obj is nested too deeply or contains"):
        handgrad.save(loop, tmp_path / "loop.npz")  # was a RecursionError
    assert not (tmp_path / "loop.npz").exists()


def test_ints_past_the_decimal_conversion_limit_round_trip(tmp_path):
    values = {"big": 10**5000, "negative": -(7**9000), "medium": 2**60}
    handgrad.save(values, tmp_path / "ints.npz")  # 10**5000 was a ValueError from int -> str
    assert handgrad.load(tmp_path / "ints.npz") == values


@pytest.mark.parametrize("meta,what", [
    (b'{"format":"handgrad-checkpoint","version":1}', "no 'root' entry"),
    (b'{"format":"handgrad-checkpoint","version":1,"root":[1]}', "unexpected metadata node"),
    (b'{"format":"handgrad-checkpoint","version":1,"root":{"type":"list","items":[]}}',
     "its root is a list"),
    (b'{"format":"handgrad-checkpoint","version":1,"root":{"type":"scalar","dtype":"O",'
     b'"value":1}}', "scalar of dtype object"),
    (b'{"format":"handgrad-checkpoint","version":1,"root":{"type":"int","value":7}}',
     "malformed 'int' entry"),
    (b'{"format":"handgrad-checkpoint","version":1,"root":'
     + b'{"type":"list","items":[' * 5000 + b']}' * 5000 + b"}", "nested too deeply"),
    (b'{"format":"handgrad-checkpoint","version":1,"root":'
     + b'{"type":"list","items":[' * 700 + b']}' * 700 + b"}", "nested too deeply"),
])
def test_malformed_metadata_is_a_value_error_naming_the_file(tmp_path, meta, what):
    path = tmp_path / "bad.npz"
    _write_meta(path, meta)
    with pytest.raises(ValueError, match=rf"handgrad.load: .*bad.npz is not a valid .*{what}"):
        handgrad.load(path)


def test_load_into_needs_a_layer(tmp_path):
    handgrad.save(handgrad.Linear(3, 2), tmp_path / "m.npz")
    with pytest.raises(TypeError, match="handgrad.load_into: expected a Layer"):
        handgrad.load_into(None, tmp_path / "m.npz")  # was an AttributeError
