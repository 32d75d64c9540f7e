"""The fused update kernel: low-rank gradient identity, numba == numpy == the dense optimizer, solver sums."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import fit_run, random_network

from circuitprop.backends import FastBackend
from circuitprop.kernels import fused as kernels
from circuitprop.kernels.fused import LowRankGradient, crossbar_sums, project, update_numba, update_numpy
from circuitprop.learning import EPTrainer
from circuitprop.learning.ep import low_rank_gradients
from circuitprop.learning.optimizers import SGD


def test_low_rank_gradient_is_the_sum_of_squared_drops(rng):
    net = random_network("5-4-3", amplifier_gain=2.0)
    sol = FastBackend().solve(net, rng.uniform(0, 1, (3, 5)))
    other = FastBackend().solve(net, rng.uniform(0, 1, (3, 5)))
    phases = [(sol.voltages, 0.7), (other.voltages, -0.3)]
    grads = low_rank_gradients(net, phases)
    for (a, b), grad in grads.items():
        gain = net.architecture.forward_gain(a)
        brute = np.zeros(net.conductances[(a, b)].shape)
        for voltages, w in phases:
            drops = gain * voltages[a][:, :, None] - voltages[b][:, None, :]
            brute += w * 0.5 * (drops ** 2).sum(axis=0)
        np.testing.assert_allclose(grad.dense(), brute, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_rows_numba_and_numpy_agree(rng, monkeypatch, dtype):
    v = rng.normal(0, 0.3, (12, 41)).astype(dtype)
    weights = rng.normal(size=12)
    left, half = kernels.weighted_rows(v, weights, gain=2.5)
    none, half_only = kernels.weighted_rows(v, weights, left=False)
    assert none is None and left.dtype == half.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(half_only, half)
    exact_half = 0.5 * (weights[:, None] * v.astype(np.float64) ** 2).sum(axis=0)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(half, exact_half, rtol=tol, atol=tol * np.abs(exact_half).max())
    np.testing.assert_allclose(left, 2.5 * weights[:, None] * v, rtol=tol)
    monkeypatch.setenv("CIRCUITPROP_KERNELS", "numpy")
    numpy_left, numpy_half = kernels.weighted_rows(v, weights, gain=2.5)
    np.testing.assert_allclose(numpy_half, half, rtol=tol, atol=tol * np.abs(exact_half).max())
    np.testing.assert_allclose(numpy_left, left, rtol=tol)


def make_case(rng, dtype, shape=(37, 23), rows=8):
    g = rng.uniform(1e-7, 2e-6, shape).astype(dtype)
    grad = LowRankGradient(a=rng.normal(size=shape[0]).astype(dtype), b=rng.normal(size=shape[1]).astype(dtype),
                           left=rng.normal(size=(rows, shape[0])).astype(dtype),
                           right=rng.normal(size=(rows, shape[1])).astype(dtype))
    return g, grad


# 23 columns take the narrow kernel, 41 the row-view one (kernels.NARROW_COLUMNS)
@pytest.mark.parametrize("columns", [23, 41])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum, sign", [(0.0, False), (0.5, False), (0.9, True)])
def test_numba_and_numpy_kernels_agree_with_the_dense_optimizer(rng, dtype, momentum, sign, columns):
    g, grad = make_case(rng, dtype, shape=(37, columns))
    results = []
    for impl in (update_numba, update_numpy, "dense"):
        cond = g.copy()
        vel = np.zeros_like(g) if momentum else None
        sums = []
        for step in range(3):  # several steps so that momentum and clipping both act
            if impl == "dense":
                opt = SGD(2e-7, momentum=momentum, sign=sign)
                opt.velocity = {} if vel is None or step == 0 else {(1, 2): vel}
                opt.step({(1, 2): cond}, {(1, 2): grad.dense()}, 1e-7, 1.5e-6, grad_scale=1e-6)
                if momentum:
                    vel = opt.velocity[(1, 2)]
                sums.append((cond.sum(axis=1), cond.sum(axis=0)))
            else:
                sums.append(impl(cond, vel, grad, 1e-6, 2e-7, momentum, sign, 1e-7, 1.5e-6)[:2])
        assert cond.min() >= dtype(1e-7) and cond.max() <= dtype(1.5e-6)
        assert (cond == dtype(1e-7)).any() or (cond == dtype(1.5e-6)).any()  # clipping was exercised
        results.append((cond, sums[-1]))
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for cond, (rows, cols) in results[1:]:
        np.testing.assert_allclose(cond, results[0][0], rtol=tol, atol=tol * 1e-6)
        np.testing.assert_allclose(cols, results[0][1][1], rtol=tol * 10)
        np.testing.assert_allclose(rows, results[0][1][0], rtol=tol * 10)


@pytest.mark.parametrize("columns", [17, 40])
@pytest.mark.parametrize("rank, n_projected, momentum, dtype, n_rows", [
    (8, 4, 0.0, np.float64, 51), (8, 4, 0.5, np.float64, 51), (4, 4, 0.5, np.float32, 51),
    (8, 3, 0.5, np.float64, 51), (5, 4, 0.5, np.float64, 51), (12, 4, 0.0, np.float32, 51),
    (8, 4, 0.5, np.float32, 211), (16, 4, 0.5, np.float32, 211), (16, 4, 0.5, np.float64, 51),
    (12, 4, 0.5, np.float32, 211)])
def test_kernel_sums_match_the_solver_sums(rng, rank, n_projected, momentum, dtype, columns, n_rows):
    # every path of the kernels (narrow crossbars; one pass per row or two rows per pass, with or without a
    # head of earlier terms; projection fused or not; the general loop for a rank that is not a multiple of 4);
    # 51 and 211 rows leave an odd row in some chunks, and 211 rows (27 per chunk) flush float32 column sums
    # inside a chunk (kernels.COLUMN_BLOCK)
    assert (columns < kernels.NARROW_COLUMNS) == (columns == 17)
    assert -(-211 // kernels.CHUNKS) > kernels.COLUMN_BLOCK
    g, grad = make_case(rng, dtype, shape=(n_rows, columns), rows=rank)
    reference = g.copy()
    inputs = rng.uniform(-1, 1, (n_projected, n_rows))
    velocity = np.full_like(g, 1e-3) if momentum else None
    reference_velocity = None if velocity is None else velocity.copy()
    rows, cols, drive = update_numba(g, velocity, grad, 1e-6, 1e-7, momentum, False, 1e-7, 1.5e-6, project=inputs)
    update_numpy(reference, reference_velocity, grad, 1e-6, 1e-7, momentum, False, 1e-7, 1.5e-6)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(g, reference, rtol=tol, atol=tol * 1e-6)  # the update itself
    if momentum:
        np.testing.assert_allclose(velocity, reference_velocity, rtol=tol, atol=tol * 1e-3)
    again_rows, again_cols = crossbar_sums(g)
    np.testing.assert_array_equal(cols, again_cols)  # bit for bit: resumed runs are exact
    np.testing.assert_array_equal(rows, again_rows)
    np.testing.assert_allclose(cols, g.sum(axis=0, dtype=np.float64), rtol=1e-13 if dtype == np.float64 else 1e-6)
    np.testing.assert_array_equal(drive, project(inputs, g))  # the fused projection of the updated array
    scale = np.abs(inputs) @ g  # sums of terms of both signs: the rounding error scales with the terms' size
    np.testing.assert_array_less(np.abs(drive - inputs.astype(dtype) @ g),
                                 (1e-12 if dtype == np.float64 else 1e-5) * scale + 1e-30)
    numpy_drive = update_numpy(g.copy(), None, grad, 1e-6, 1e-7, 0.0, False, 1e-7, 1.5e-6, project=inputs)[2]
    assert numpy_drive.shape == (n_projected, columns)


def small(**kw):
    params = dict(layers="5-4-3", epochs=2, batch_size=4, verbose=False, learning_rate=300.0, g_init=(1e-6, 1e-5),
                  amplifier_gain=2.0, diode="ideal", solver_sweeps=None, solver_tol=1e-13)
    params.update(kw)
    return EPTrainer(**params)


def test_incremental_solver_matches_a_fresh_one(rng):
    X, y = rng.uniform(0, 1, (24, 5)), rng.integers(0, 3, 24)
    trainer = small().fit(X, y)
    prepared = trainer._session._prepared  # the session's solver, updated from the kernel's sums
    fresh = FastBackend(dtype="float64").prepare(trainer.network_)
    for layer in prepared.coef:
        np.testing.assert_allclose(prepared.coef[layer], fresh.coef[layer], rtol=1e-12)
    a = prepared.solve(X[:6]).flat()
    b = fresh.solve(X[:6]).flat()
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_numpy_fallback_trains_like_the_numba_kernel(rng, monkeypatch):
    X, y = rng.uniform(0, 1, (24, 5)), rng.integers(0, 3, 24)
    with_numba = small().fit(X, y)
    monkeypatch.setenv("CIRCUITPROP_KERNELS", "numpy")
    assert kernels.backend_name() == "numpy"
    with_numpy = small().fit(X, y)
    for key, g in with_numba.network_.conductances.items():
        np.testing.assert_allclose(with_numpy.network_.conductances[key], g, rtol=1e-9)


def test_float32_training_end_to_end(rng, tmp_path):
    X, y = rng.uniform(0, 1, (48, 5)), rng.integers(0, 3, 48)
    t64 = small(epochs=3).fit(X, y)
    t32 = fit_run(small(epochs=3, dtype="float32", solver_tol=1e-6), X, y, checkpoint=tmp_path / "c.npz")
    for key, g in t32.network_.conductances.items():
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, t64.network_.conductances[key], rtol=2e-3, atol=1e-9)
    assert t32.history_[-1]["train_loss"] == pytest.approx(t64.history_[-1]["train_loss"], rel=1e-2)
    resumed = EPTrainer.from_checkpoint(tmp_path / "c.npz")
    assert resumed.network_.dtype == np.float32 and resumed.dtype == "float32"



CACHE_SCRIPT = """
import numba
import numpy as np
from circuitprop.kernels.fused import renamed


def roots(out):
    for i in numba.prange(out.size):
        out[i] = np.sqrt(i * 1.0)


parallel = numba.njit(parallel=True, cache=True)(renamed(roots, "parallel"))
serial = numba.njit(cache=True)(renamed(roots, "serial"))
a = np.zeros(4096)
serial(a)  # the serial compilation first, as after a small batch
parallel(a)
print(len(serial.stats.cache_hits), len(parallel.stats.cache_hits), len(parallel.stats.cache_misses))
"""


def test_parallel_and_serial_compilations_stay_apart_in_numbas_cache(tmp_path):
    """numba finds a cache entry by the function's name, line and bytecode, not by its options: without
    ``renamed``, ``njit(parallel=True, cache=True)(f)`` loads the entry ``njit(cache=True)(f)`` just saved
    (cache hit, serial code; checked by hand with this script).  The renamed copies compile apart."""
    import os
    import subprocess
    import sys
    script = tmp_path / "cached_kernels.py"
    script.write_text(CACHE_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    first = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                           check=True).stdout.split()
    assert first == ["0", "0", "1"]  # a fresh cache: the parallel kernel compiled, not loaded from the serial entry
    again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                           check=True).stdout.split()
    assert again == ["1", "1", "0"]  # and each is then loaded from its own entry


def test_importing_circuitprop_first_shortens_openblas_spin():
    """``import circuitprop`` before numpy sets OPENBLAS_THREAD_TIMEOUT (read when OpenBLAS loads), and never
    overrides a value the user set."""
    import os
    import subprocess
    import sys
    code = "import os, circuitprop; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    run = lambda c, e: subprocess.run([sys.executable, "-c", c], capture_output=True, text=True, env=e,  # noqa: E731
                                      check=True).stdout.strip()
    assert run(code, env) == "16"
    assert run(code, dict(env, OPENBLAS_THREAD_TIMEOUT="28")) == "28"
    assert run("import numpy; " + code, env) == "None"  # too late once numpy has loaded OpenBLAS: left alone


def cached_kernels():
    """Every numba kernel that circuitprop caches on disk (name, dispatcher)."""
    from circuitprop.kernels import shockley
    found = [("update", k) for k in kernels._kernel()]
    found += [("sums", kernels._sums_kernel()), ("project", kernels._project_kernel()),
              ("row sums", kernels._row_sums_kernel()), ("inputs", kernels._inputs_kernel()),
              ("weighted rows", kernels._rows_kernel())]
    for name, value in shockley._build().items():
        for k in (value if isinstance(value, tuple) else (value,)):
            if hasattr(k, "py_func") and type(k._cache).__name__ != "NullCache":  # cache=True
                found.append((name, k))
    return found


def test_no_cached_kernel_closes_over_a_jitted_function():
    """numba keys its disk cache on the pickled closure of a kernel, and a jitted function pickles with a
    per-process id: a kernel closing over one misses the cache and compiles in every process (it cost about
    20 s at the start of each training run).  Helpers are reached as module globals instead."""
    from numba.core.dispatcher import Dispatcher
    found = cached_kernels()
    assert len(found) >= 15
    for name, kernel in found:
        cells = [c.cell_contents for c in (kernel.py_func.__closure__ or ())]
        assert not any(isinstance(c, Dispatcher) for c in cells), name


SECOND_PROCESS_SCRIPT = """
import numpy as np
from circuitprop.kernels import fused as kernels
g = np.full((40, 8), 1e-6, dtype=np.float32)
kernels.crossbar_sums(g)
kernels.project(np.ones((4, 40)), g)
print(len(kernels._sums_kernel().stats.cache_hits), len(kernels._project_kernel().stats.cache_hits))
"""


def test_kernels_load_from_the_disk_cache_in_a_second_process(tmp_path):
    import os
    import subprocess
    import sys
    script = tmp_path / "second.py"
    script.write_text(SECOND_PROCESS_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                           check=True).stdout.split() for _ in range(2)]
    # the sums kernel compiles in the first process and loads in the second; the projection (a parallel kernel
    # that must run the cached code in every process, see CacheConsistent) is compiled by a child process and
    # loaded in both
    assert runs == [["0", "1"], ["1", "1"]]


FRESH_OR_CACHED = """
import hashlib, numpy as np
from circuitprop.kernels.fused import LowRankGradient, update_numba
rng = np.random.default_rng(0)
n, m, r = 1570, 100, 8
g = rng.uniform(1e-7, 2e-6, (n, m)); v = np.zeros_like(g)
grad = LowRankGradient(a=rng.normal(size=n), b=rng.normal(size=m), left=rng.normal(size=(r, n)),
                       right=rng.normal(size=(r, m)))
rows, cols, drive = update_numba(g, v, grad, 1e-6, 0.3, 0.5, False, 1e-8, 1e-4, rows=False,
                                 project=rng.uniform(0, 1, (4, n)))
print(hashlib.sha1(g.tobytes() + v.tobytes() + cols.tobytes() + drive.tobytes()).hexdigest())
"""


def test_a_process_that_compiles_the_kernels_computes_what_one_that_loads_them_does(tmp_path):
    """numba's code for a parallel kernel it has just compiled rounds differently from the same kernel loaded from
    its disk cache (0.15 % of the conductances of a 1570 x 100 crossbar differed in their last bit after one
    update, and a 3-epoch MNIST training ended at 96.73 % instead of 96.76 %). Every process now runs the cached
    code, so a fresh cache and a warm one give the same bits, and a resume matches the run it resumes."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    run = lambda: subprocess.run([sys.executable, "-c", FRESH_OR_CACHED], capture_output=True, text=True,  # noqa: E731
                                 env=env, check=True, timeout=600).stdout
    assert run() == run()


CACHE_USER = ("import warnings, numpy as np, circuitprop; warnings.simplefilter('always');"
              "from circuitprop.kernels.fused import crossbar_sums;"
              "g = np.linspace(1e-6, 2e-6, 64 * 40).reshape(64, 40);"
              "r, c = crossbar_sums(g, rows=True); print(repr(float(r.sum() + c.sum())))")


@pytest.mark.parametrize("damage", ["truncate", "empty", "random", "swap"])
def test_a_damaged_numba_cache_is_compiled_again_with_a_warning(tmp_path, damage):
    """Truncated, emptied, random or swapped cache files gave a traceback on every start (UnpicklingError,
    EOFError, OverflowError, TypeError, LLVM bitcode errors); now the kernel compiles again with a warning
    naming the cache folder, and gives the same result."""
    cache = tmp_path / "cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    run = lambda: subprocess.run([sys.executable, "-c", CACHE_USER], capture_output=True, text=True,  # noqa: E731
                                 env=env, timeout=300)
    first = run()
    assert first.returncode == 0, first.stderr
    files = sorted(p for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc"))
    assert files
    rng = np.random.default_rng(0)
    for path in files:
        data = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(data[:len(data) // 2])
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "random":
            path.write_bytes(rng.integers(0, 256, len(data), dtype=np.uint8).tobytes())
    if damage == "swap":  # each kernel's files hold another kernel's entries
        contents = [p.read_bytes() for p in files]
        for path, data in zip(files, contents[1:] + contents[:1]):
            path.write_bytes(data)
    second = run()
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    if damage != "swap":  # a swapped index that numba itself finds stale is recompiled silently
        assert "unreadable" in second.stderr and str(cache) in second.stderr
    third = run()  # the damaged entries were replaced: a clean start again
    assert third.returncode == 0 and third.stdout == first.stdout and "unreadable" not in third.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("omega", [1.0, 1.5])
@pytest.mark.parametrize("shape", [(3, 37, 11), (8, 300, 260)])  # serial and parallel compilations
def test_crossbar_pass_equals_the_two_products(rng, dtype, omega, shape):
    from circuitprop.kernels.shockley import ideal_crossbar_pass
    batch, n_a, n_b = shape
    weights = rng.uniform(1e-6, 1e-4, (n_a, n_b)).astype(dtype)
    sources = rng.uniform(-0.5, 1.5, (batch, n_b)).astype(dtype)
    coef = (1.2 * weights.sum(axis=1) + 1e-4).astype(dtype)
    base = (rng.uniform(-1, 2, (batch, n_a)) * coef).astype(dtype)  # some neurons clip low, some high
    previous = rng.uniform(0, 1, (batch, n_a)).astype(dtype)
    got = ideal_crossbar_pass(weights, sources, base, coef, 0.25, 4.0, 0.0, 1.0, omega=omega, previous=previous)
    x = (base + 0.25 * sources @ weights.T) / coef
    if omega != 1.0:
        x = previous + omega * (x - previous)
    v = np.clip(x, 0.0, 1.0)
    drive = 4.0 * v @ weights
    assert 0 < np.mean(v == 0.0) + np.mean(v == 1.0) < 1, "some neurons clip, some not"
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got[0], v, atol=tol)
    np.testing.assert_allclose(got[1], drive, rtol=tol, atol=tol * np.abs(drive).max())
    assert got[0].dtype == got[1].dtype == dtype


def test_crossbar_pass_needs_numba_and_the_previous_state_to_over_relax(rng, monkeypatch):
    from circuitprop.kernels.shockley import ideal_crossbar_pass
    w, s, b, c = np.ones((4, 3)), np.ones((2, 3)), np.ones((2, 4)), np.ones(4)
    with pytest.raises(ValueError, match="previous"):
        ideal_crossbar_pass(w, s, b, c, 1.0, 1.0, 0.0, 1.0, omega=1.5)
    monkeypatch.setenv("CIRCUITPROP_KERNELS", "numpy")
    assert ideal_crossbar_pass(w, s, b, c, 1.0, 1.0, 0.0, 1.0) is None
