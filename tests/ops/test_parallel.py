"""handgrad.ops.parallel: chunks on threads, BLAS single-threaded meanwhile, same results."""

import copy
import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.ops import parallel

needs_blas_control = pytest.mark.skipif(
    not parallel._blas_controllers(), reason="threadpoolctl cannot see NumPy's BLAS here"
)


@pytest.fixture
def threads():
    """Set handgrad's thread count for one test and restore the default after it."""
    yield parallel.set_num_threads
    parallel.set_num_threads(None)


def blas_threads():
    # Read through threadpoolctl itself, not through run_chunks' own cached functions.
    return [c.controller.num_threads for c in parallel._blas_controllers()]


@needs_blas_control
def test_direct_blas_thread_functions_agree_with_threadpoolctl():
    for blas in parallel._blas_controllers():
        before = blas.controller.num_threads
        try:
            for n in (1, 2, before):
                blas.set(n)
                assert blas.controller.num_threads == n
                assert blas.get() == n
        finally:
            blas.controller.set_num_threads(before)
    if any(b.controller.internal_api == "openblas" for b in parallel._blas_controllers()):
        # OpenBLAS is called directly, without threadpoolctl's per-call symbol lookup.
        assert all(b._set is not None for b in parallel._blas_controllers()
                   if b.controller.internal_api == "openblas")


@needs_blas_control
def test_every_chunk_once_and_blas_restored(threads):
    threads(3)
    before = blas_threads()
    seen, inside = [], []
    # The first two threads to arrive wait for each other, so that the chunks are shared
    # whatever the machine's load (no timing assumptions).
    meet, lock, arrived = threading.Barrier(2, timeout=30), threading.Lock(), set()

    def work(worker, chunk):
        with lock:
            first = threading.get_ident() not in arrived and len(arrived) < 2
            arrived.add(threading.get_ident())
        if first:
            meet.wait()
        seen.append((worker, chunk, threading.get_ident()))
        inside.append((blas_threads(), parallel.get_num_threads()))

    used = parallel.run_chunks(work, range(7))
    assert used == 3
    assert sorted(chunk for _, chunk, _ in seen) == list(range(7))
    assert {worker for worker, _, _ in seen} <= {0, 1, 2}
    # one thread number per thread: per-thread scratch buffers are never shared
    assert len({(w, ident) for w, _, ident in seen}) == len({w for w, _, _ in seen})
    assert all(b == [1] * len(before) and nested == 1 for b, nested in inside)
    # (a pool thread that finished its share early may also run another worker's share)
    assert len({ident for _, _, ident in seen}) >= 2
    assert blas_threads() == before


@needs_blas_control
def test_an_exception_in_a_chunk_is_raised_after_all_threads_stop(threads, monkeypatch):
    threads(2)
    before = blas_threads()
    done, queues = [], []

    class RecordingQueue(parallel._Queue):
        def __init__(self, chunks):
            super().__init__(chunks)
            queues.append(self)

    monkeypatch.setattr(parallel, "_Queue", RecordingQueue)

    def work(worker, chunk):
        if chunk == 1:
            raise KeyError("chunk one")
        if chunk > 1:  # finish only once the failure is recorded (no timing assumptions)
            for _ in range(30_000):
                if queues[0].failed:
                    break
                time.sleep(0.001)
        done.append(chunk)

    with pytest.raises(KeyError, match="chunk one"):
        parallel.run_chunks(work, range(50))
    # chunk 0, and at most the one chunk the other thread had in hand: the rest never ran
    assert 1 not in done and len(done) <= 2
    assert blas_threads() == before


@needs_blas_control
def test_workers_serve_later_calls_after_a_failure(threads):
    threads(2)

    def fail(worker, chunk):
        raise ValueError(f"chunk {chunk}")

    for _ in range(3):
        with pytest.raises(ValueError, match="chunk"):
            parallel.run_chunks(fail, range(4))
    seen = []
    assert parallel.run_chunks(lambda w, c: seen.append(c), range(20)) == 2
    assert sorted(seen) == list(range(20))


@needs_blas_control
def test_a_second_caller_runs_serially_while_the_workers_are_busy(threads):
    threads(2)
    before = blas_threads()
    inside, second_done = threading.Event(), threading.Event()
    second = []

    def first_work(worker, chunk):
        if chunk == 0:  # hold the workers until the other caller has finished
            inside.set()
            assert second_done.wait(30)

    def other_caller():
        assert inside.wait(30)
        used = parallel.run_chunks(lambda w, c: second.append((w, c, threading.get_ident())),
                                   range(5))
        second.append(used)
        second_done.set()

    caller = threading.Thread(target=other_caller)
    caller.start()
    assert parallel.run_chunks(first_work, range(4)) == 2
    caller.join(30)
    *chunks, used = second
    assert used == 1 and [c for _, c, _ in chunks] == list(range(5))
    assert {(w, ident) for w, _, ident in chunks} == {(0, caller.ident)}
    assert blas_threads() == before


@needs_blas_control
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_workers(threads):
    threads(2)
    assert parallel.run_chunks(lambda w, c: None, range(4)) == 2  # the parent's workers run
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child():
        seen = []
        used = parallel.run_chunks(lambda w, c: seen.append((w, c)), range(6))
        results.put((used, sorted(c for _, c in seen), sorted({w for w, _ in seen})))

    process = context.Process(target=child)
    process.start()
    try:
        used, chunks, workers = results.get(timeout=60)
    finally:
        process.join(60)
    assert process.exitcode == 0
    assert used == 2 and chunks == list(range(6)) and set(workers) <= {0, 1}


def test_one_thread_runs_in_order_on_the_calling_thread(threads):
    threads(1)
    seen = []
    assert parallel.run_chunks(lambda w, c: seen.append((w, c, threading.get_ident())),
                               "abc") == 1
    assert seen == [(0, c, threading.get_ident()) for c in "abc"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        parallel.set_num_threads(bad)


@needs_blas_control
def test_environment_variable(monkeypatch, threads):
    threads(None)
    monkeypatch.setenv("HANDGRAD_NUM_THREADS", "3")
    assert parallel.get_num_threads() == 3
    monkeypatch.setenv("HANDGRAD_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="HANDGRAD_NUM_THREADS"):
        parallel.get_num_threads()


def test_public_names():
    assert hg.set_num_threads is parallel.set_num_threads
    assert hg.get_num_threads is parallel.get_num_threads


@needs_blas_control
@given(batch=st.integers(1, 9), stride=st.integers(1, 2), padding=st.integers(0, 1),
       out_channels=st.sampled_from([2, 6]), n_threads=st.integers(2, 3))
def test_conv2d_threaded_equals_serial(batch, stride, padding, out_channels, n_threads):
    conv = hg.Conv2d(4, out_channels, 3, stride=stride, padding=padding, dtype=np.float64,
                     rng=0)
    conv._chunk_bytes = 4 * 9 * 8 * 8 * 8  # ~1 image per chunk: several chunks per thread
    x = np.random.default_rng(1).standard_normal((batch, 4, 9, 8))
    results = []
    for n in (1, n_threads):
        layer = copy.deepcopy(conv)
        parallel.set_num_threads(n)
        try:
            y = layer(x)
            g = np.random.default_rng(2).standard_normal(y.shape)
            gx = layer.backward(g)
        finally:
            parallel.set_num_threads(None)
        results.append((y, gx, layer.weight.grad, layer.bias.grad))
    for serial, threaded in zip(*results):
        np.testing.assert_allclose(threaded, serial, rtol=1e-12, atol=1e-12)


def run_with_threads(n, make, x, steps=2):
    """Outputs, input gradients, parameter gradients and buffers of ``steps`` steps."""
    layer = make()
    parallel.set_num_threads(n)
    try:
        out = []
        for step in range(steps):
            layer.zero_grad()
            y = layer(x)
            g = np.random.default_rng(step).standard_normal(y.shape).astype(y.dtype)
            out += [y, layer.backward(g)] + [p.grad for p in layer.parameters()]
        return out + [np.asarray(b) for b in layer.buffers()]
    finally:
        parallel.set_num_threads(None)


@needs_blas_control
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm2d_threaded_equals_serial(affine):
    # 2 MB of float64: large enough for the channel blocks to go to threads
    x = np.random.default_rng(3).standard_normal((8, 5, 80, 80))

    def make():
        return hg.BatchNorm2d(5, affine=affine, dtype=np.float64)

    serial, threaded = run_with_threads(1, make, x), run_with_threads(3, make, x)
    assert len(serial) == len(threaded)
    for a, b in zip(serial, threaded):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@needs_blas_control
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_threaded_equals_serial(dtype):
    x = np.random.default_rng(4).standard_normal((4, 300, 400)).astype(dtype)  # >= 1 MB
    x[0, 0, :3] = 0.0  # the gradient at exactly 0 is 0

    def make():
        return hg.ReLU()

    serial, threaded = run_with_threads(1, make, x), run_with_threads(3, make, x)
    for a, b in zip(serial, threaded):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(serial[0], np.maximum(x, 0))


@needs_blas_control
@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1)])
def test_maxpool2d_threaded_equals_serial(kernel, stride, padding):
    x = np.random.default_rng(5).standard_normal((9, 4, 60, 62))  # distinct values, >= 1 MB

    def make():
        return hg.MaxPool2d(kernel, stride, padding)

    serial, threaded = run_with_threads(1, make, x), run_with_threads(3, make, x)
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(b, a)


@needs_blas_control
def test_maxpool2d_eval_threaded_equals_serial(threads):
    x = np.random.default_rng(6).standard_normal((9, 4, 60, 62))
    outputs = []
    for n in (1, 3):
        threads(n)
        outputs.append(hg.MaxPool2d(3, 2, 1).eval()(x))
    np.testing.assert_array_equal(outputs[1], outputs[0])


# ---------------------------------------------------------------- GIL-free products and sums
@given(stack=st.integers(0, 3), m=st.integers(1, 30), k=st.integers(1, 40), n=st.integers(1, 30),
       transposed=st.booleans())
def test_parallel_matmul_equals_np_matmul(stack, m, k, n, transposed):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    shape = (stack,) if stack else ()
    a = rng.standard_normal(shape + (m, k))
    b = rng.standard_normal(shape + (n, k)).swapaxes(-1, -2) if transposed else \
        rng.standard_normal(shape + (k, n))
    result = parallel.matmul(a, b)
    assert result.shape == shape + (m, n)
    np.testing.assert_allclose(result, np.matmul(a, b), rtol=1e-12, atol=1e-12)


def test_ones_is_cached_and_read_only():
    v = parallel.ones(7, np.dtype(np.float32))
    assert v is parallel.ones(7, np.dtype(np.float32))
    assert v.dtype == np.float32 and (v == 1).all()
    with pytest.raises(ValueError):
        v[0] = 2


@given(n=st.integers(1, 40), c=st.integers(1, 12), s=st.sampled_from([1, 3, 64, 128, 256, 1024]),
       block=st.integers(1, 12), seed=st.integers(0, 99))
def test_batchnorm_channel_sums_of_channel_blocks(n, c, s, block, seed):
    from handgrad.layers.normalization import _channel_dot
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, n, c, s))
    k = slice(0, min(block, c))  # a channel block: not contiguous when it is not all of c
    np.testing.assert_allclose(parallel.channel_sum(a[:, k]), a[:, k].sum(axis=(0, 2)),
                               rtol=1e-10, atol=1e-9)
    images = a.reshape(n, c, s, 1)[: max(1, n - 1)]  # (N, C, H, W), a slice of the batch
    np.testing.assert_allclose(parallel.channel_sum(images), images.sum(axis=(0, 2, 3)),
                               rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(_channel_dot(a[:, k], b[:, k]),
                               (a[:, k] * b[:, k]).sum(axis=(0, 2)), rtol=1e-9, atol=1e-9)


@given(n=st.integers(0, 200), parts=st.integers(1, 40))
def test_even_ranges_cover_in_order_with_sizes_one_apart(n, parts):
    ranges = parallel.even_ranges(n, parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [b - a for a, b in ranges]
    assert len(ranges) == max(1, min(n, parts))
    assert max(sizes) - min(sizes) <= 1
