import json

import warnings

import numpy as np
import pytest
from conftest import random_network

from circuitprop.model import (
    Architecture,
    DiodeModel,
    HiddenLayer,
    Network,
    NetworkError,
    make_architecture,
    parse_layers,
)
from circuitprop.model.architecture import architecture_to_dict


def test_layer_sizes_count_doubled_nodes():
    arch = make_architecture("784-100-10")
    assert arch.layer_sizes == (1568, 100, 20)
    arch = make_architecture("784-100-10", doubled_outputs=False, bias_input=True)
    assert arch.layer_sizes == (1570, 100, 10)  # bias doubled too: +b and -b


def test_input_voltages_are_plus_minus_gain_x_then_bias():
    net = Network.random(make_architecture("2-3-2", bias_input=True, input_gain=2.0, bias_voltage=0.5), seed=0)
    v = net.input_voltages([[0.25, 1.0]])
    np.testing.assert_allclose(v, [[0.5, 2.0, -0.5, -2.0, 0.5, -0.5]])


@pytest.mark.parametrize("doubled, bias", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_input_voltages_kernel_matches_numpy_bit_for_bit(rng, monkeypatch, doubled, bias, dtype):
    net = Network.random(make_architecture("7-3-2", doubled_inputs=doubled, bias_input=bias, input_gain=1.7,
                                           bias_voltage=0.3), seed=0)
    x = rng.uniform(-1, 1, (5, 7))
    by_kernel = net.input_voltages(x[:, :], dtype=dtype)
    strided = net.input_voltages(np.asfortranarray(x), dtype=dtype)
    monkeypatch.setenv("CIRCUITPROP_KERNELS", "numpy")
    by_numpy = net.input_voltages(x, dtype=dtype)
    assert by_kernel.dtype == by_numpy.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(by_kernel, by_numpy)
    np.testing.assert_array_equal(strided, by_numpy)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("bad, match", [(np.nan, "non-finite values \\(first at sample 2, feature 4\\)"),
                                        (-np.inf, "non-finite values \\(first at sample 2, feature 4\\)"),
                                        (1e9, "input at sample 2, feature 4 makes a source of 1e\\+09 V")])
def test_bad_inputs_are_located_by_either_path(rng, monkeypatch, kernels, bad, match):
    if kernels == "numpy":
        monkeypatch.setenv("CIRCUITPROP_KERNELS", "numpy")
    net = random_network("6-3-2")
    x = rng.uniform(0, 1, (3, 6))
    x[2, 4] = bad
    with pytest.raises(NetworkError, match=match):
        net.input_voltages(x, dtype=np.float32)


def test_save_load_roundtrip(tmp_path):
    net = random_network("4-3-3-2", amplifier_gain=2.5, skip=((0, 3),))
    path = net.save(tmp_path / "m.npz")
    back = Network.load(path)
    assert back.architecture == net.architecture
    for k in net.conductances:
        np.testing.assert_array_equal(back.conductances[k], net.conductances[k])
    assert back.fingerprint() == net.fingerprint()
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left


@pytest.mark.parametrize("bad, match", [
    (0.0, "must be finite and > 0"), (-1e-6, "must be finite and > 0"), (np.nan, "must be finite"),
    (np.inf, "must be finite"),
])
def test_bad_conductance_is_named(bad, match):
    net = random_network("3-2-2")
    g = net.conductances[(0, 1)].copy()
    g[1, 0] = bad
    with pytest.raises(NetworkError, match=r"crossbar \(0, 1\).*index \(1, 0\)"):
        Network(net.architecture, {**net.conductances, (0, 1): g})


def test_shape_mismatch_is_named():
    net = random_network("3-2-2")
    with pytest.raises(NetworkError, match=r"crossbar \(1, 2\).*shape \(3, 4\), expected \(2, 4\)"):
        Network(net.architecture, {**net.conductances, (1, 2): np.full((3, 4), 1e-6)})


def test_missing_and_extra_crossbars():
    net = random_network("3-2-2")
    with pytest.raises(NetworkError, match="no conductance array for crossbar"):
        Network(net.architecture, {(0, 1): net.conductances[(0, 1)]})
    with pytest.raises(NetworkError, match="not in the architecture"):
        Network(net.architecture, {**net.conductances, (0, 2): np.ones((6, 4))})


def test_node_without_dc_path_is_refused():
    arch = Architecture(n_features=2, hidden=(HiddenLayer(2), HiddenLayer(2)), n_classes=1,
                        crossbars=((0, 1), (2, 3)))
    with pytest.raises(NetworkError, match="layer 2 has no DC path"):
        Network.random(arch)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="zener"), "diode.kind"),
    (dict(saturation_current=-1.0), "saturation_current"),
    (dict(series_resistance=-5.0), "series_resistance"),
])
def test_unknown_or_bad_diode_parameters(kwargs, match):
    with pytest.raises(NetworkError, match=match):
        DiodeModel(**kwargs)


def test_bad_layer_specs():
    with pytest.raises(NetworkError, match="layer spec"):
        parse_layers("784-x-10")
    with pytest.raises(NetworkError, match="v_low"):
        Network.random(make_architecture("3-2-2", v_low=1.0, v_high=0.5))
    with pytest.raises(NetworkError, match="crossbar"):
        Network.random(make_architecture("3-2-2", skip=((2, 1),)))


def test_dropped_crossbars_leave_the_rest_in_order_and_bad_drops_are_named():
    arch = make_architecture("5-4-4-3", skip=((0, 2), (1, 3)), drop=((1, 2),))
    assert arch.crossbars == ((0, 1), (2, 3), (0, 2), (1, 3))
    with pytest.raises(NetworkError, match=r"cannot drop crossbar 0-2 of 5-4-4-3: only .*\(0-1, 1-2, 2-3\)"):
        make_architecture("5-4-4-3", skip=((0, 2),), drop=((0, 2),))
    # a layer cut off from the inputs has no DC path: refused when the network is built
    with pytest.raises(NetworkError, match="layer 2 has no DC path"):
        Network.random(make_architecture("5-4-4-3", drop=((1, 2),)))


def test_load_reports_malformed_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(NetworkError, match="bad.npz: not a circuitprop file"):
        Network.load(bad)
    with pytest.raises(NetworkError, match="no such file"):
        Network.load(tmp_path / "missing.npz")
    # unknown element parameter in the spec
    net = random_network("3-2-2")
    path = net.save(tmp_path / "ok.npz")
    data = dict(np.load(path))
    spec = json.loads(data["__spec__"].tobytes())
    spec["architecture"]["diode"]["BV"] = 5
    data["__spec__"] = np.frombuffer(json.dumps(spec).encode(), np.uint8)
    np.savez(tmp_path / "unknown.npz", **data)
    with pytest.raises(NetworkError, match="unknown diode parameters"):
        Network.load(tmp_path / "unknown.npz")


def test_input_shape_error():
    net = random_network("3-2-2")
    with pytest.raises(NetworkError, match=r"expected \(batch, 3\)"):
        net.input_voltages(np.zeros((2, 4)))


@pytest.mark.parametrize("layers, skip, expected", [
    ("6-5-4-3", ((0, 2), (1, 3)), {(0, 1): 1, (0, 2): 1, (1, 2): 1 / 16, (1, 3): 1 / 16, (2, 3): 1 / 16}),
    ("6-5-4-3", (), {(0, 1): 1, (1, 2): 1 / 16, (2, 3): 1 / 256}),
    ("6-5-4-4-3", ((1, 3),), {(0, 1): 1, (1, 2): 1 / 16, (1, 3): 1 / 16, (2, 3): 1 / 256, (3, 4): 1 / 256}),
])
def test_amplifier_init_scales_follow_the_gain_squared_and_the_layers_inputs(layers, skip, expected):
    from circuitprop.model.network import amplifier_init_scales
    arch = make_architecture(layers, skip=skip, amplifier_gain=4.0)
    assert amplifier_init_scales(arch) == pytest.approx(expected, rel=1e-15)
    # without amplifiers nothing is scaled
    assert set(amplifier_init_scales(make_architecture(layers, skip=skip)).values()) == {1.0}
    # non-reciprocal amplifiers load the layer before with A*c times the conductance: c = 1/A, no scaling
    assert set(amplifier_init_scales(make_architecture(layers, skip=skip, amplifier_gain=4.0,
                                                       backward_gain=0.25)).values()) == {1.0}


def test_amplifier_init_scales_the_uniform_draws_and_floors_them():
    from circuitprop.model.network import amplifier_init_scales
    arch = make_architecture("6-5-4-3", amplifier_gain=4.0)
    plain = Network.random(arch, 1e-7, 2e-6, seed=3)
    with pytest.warns(UserWarning) as caught:
        scaled = Network.random(arch, 1e-7, 2e-6, seed=3, init="amplifier", floor=1e-8)
    for key, scale in amplifier_init_scales(arch).items():
        np.testing.assert_array_equal(scaled.conductances[key], np.maximum(plain.conductances[key] * scale, 1e-8))
    # 1/256 of [0.1, 2] uS lies wholly below the floor: the crossbar starts uniform, and only it is named
    assert np.all(scaled.conductances[(2, 3)] == 1e-8)
    assert [str(w.message).split(":")[0] for w in caught] == ["crossbar 2-3"]
    assert "every one of its conductances starts at 1e-08 S" in str(caught[0].message)
    # 1/16 of it (crossbar 1-2) reaches above the floor: its draws still differ, no warning
    assert np.unique(scaled.conductances[(1, 2)]).size == scaled.conductances[(1, 2)].size
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Network.random(arch, 1e-7, 2e-6, seed=3, init="amplifier", floor=1e-9)  # nothing wholly below 1 nS
    with pytest.raises(NetworkError, match="unknown init"):
        Network.random(arch, 1e-7, 2e-6, init="he")


@pytest.mark.parametrize("layers, skip, expected", [
    # one hidden layer with few inputs: 16 x 3 output nodes outweigh 6 inputs, scaled to 6 / 48
    ("6-5-3", (), {(0, 1): 1, (1, 2): 6 / 48}),
    # a wide input layer: 16 x 3 = 48 < 60 inputs, nothing to scale (the 784-1024-10 case)
    ("60-5-3", (), {(0, 1): 1, (1, 2): 1}),
    # skips: layer 1 drives 4 + 3 nodes (load 16 x 7 against 6 inputs); layer 2 has 6 inputs plus 5 scaled ones
    ("6-5-4-3", ((0, 2), (1, 3)), {(0, 1): 1, (0, 2): 1, (1, 2): 6 / 112, (1, 3): 6 / 112,
                                  (2, 3): (6 + 5 * 6 / 112) / 48}),
    # a chain: each layer's load in is the scaled load out of the one before
    ("6-5-4-3", (), {(0, 1): 1, (1, 2): 6 / 64, (2, 3): 5 * 6 / 64 / 48}),
])
def test_balanced_init_scales_cap_the_amplified_load_at_the_load_entering(layers, skip, expected):
    from circuitprop.model.network import balanced_init_scales
    single = dict(doubled_inputs=False, doubled_outputs=False)  # node counts as written in `layers`
    arch = make_architecture(layers, skip=skip, amplifier_gain=4.0, **single)
    scales = balanced_init_scales(arch)
    assert scales == pytest.approx(expected, rel=1e-15)
    # the defining property: on every hidden layer the amplified load of the crossbars leaving it is at most the
    # load of those entering it, and equal wherever a crossbar was scaled
    sizes = arch.layer_sizes
    for a in range(1, len(sizes) - 1):
        load_in = sum(sizes[c] * s for (c, b), s in scales.items() if b == a)
        load_out = 16 * sum(sizes[b] * s for (c, b), s in scales.items() if c == a)
        assert load_out <= load_in * (1 + 1e-12)
        if min(s for (c, b), s in scales.items() if c == a) < 1:
            assert load_out == pytest.approx(load_in, rel=1e-12)
    # without amplifiers a layer only overloads the one before when it is wider than that one's inputs
    assert balanced_init_scales(make_architecture("60-5-3", **single)) == {(0, 1): 1.0, (1, 2): 1.0}


def test_balanced_init_leaves_the_one_hidden_layer_depth_table_circuit_as_drawn():
    from circuitprop.model.network import balanced_init_scales
    arch = make_architecture("784-1024-10", amplifier_gain=4.0, doubled_inputs=True, doubled_outputs=True)
    assert set(balanced_init_scales(arch).values()) == {1.0}  # 16 x 20 outputs against 1568 inputs
    deep = make_architecture("784-1024-1024-10", skip=((0, 2), (1, 3)), amplifier_gain=4.0, doubled_inputs=True,
                             doubled_outputs=True)
    scales = balanced_init_scales(deep)
    assert scales[(1, 2)] == pytest.approx(1568 / (16 * 1044), rel=1e-15) and scales[(2, 3)] == 1.0


@pytest.mark.filterwarnings("ignore:crossbar .* below the floor:UserWarning")  # this chain floors 2-3 and 3-4
@pytest.mark.parametrize("init", ["amplifier", "balanced"])
def test_scaled_init_lets_a_chain_of_amplified_layers_settle_in_fewer_sweeps(init):
    """Physics of the scaling: behind a gain-A amplifier a crossbar loads the layer before with A^2 its
    conductance; scaled, each layer is set by its inputs and the steady state is reached in fewer sweeps."""
    from circuitprop.backends import FastBackend
    arch = make_architecture("20-32-32-32-3", amplifier_gain=4.0)
    x = np.random.default_rng(0).uniform(0, 1, (4, 20))
    sweeps = {}
    for kind in ("uniform", init):
        net = Network.random(arch, 1e-7, 2e-6, seed=1, init=kind, floor=1e-8)
        sol = FastBackend(tol=1e-12, max_sweeps=100000).solve(net, x)
        assert sol.converged
        sweeps[kind] = sol.iterations
    assert sweeps[init] * 3 < sweeps["uniform"], sweeps


def test_inverted_copies_double_the_rows_of_crossbars_leaving_a_layer_and_survive_a_round_trip(tmp_path):
    arch = make_architecture("5-4-3-2", amplifier_gain=2.0, skip=((0, 2), (1, 3)), inverted_copies=True)
    assert [h.inverted_copy for h in arch.hidden] == [True, False]  # layer 2 feeds only the outputs
    assert {k: arch.crossbar_shape(*k) for k in arch.crossbars} == {
        (0, 1): (10, 4), (1, 2): (8, 3), (2, 3): (3, 4), (0, 2): (10, 3), (1, 3): (8, 4)}
    v = np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(arch.row_voltages(1, v), np.concatenate([2 * v, -2 * v], axis=1))
    np.testing.assert_array_equal(arch.fold_rows(1, np.arange(16.0).reshape(2, 8)), np.full((2, 4), -4.0))
    net = Network.random(arch, seed=1)
    path = net.save(tmp_path / "inverted.npz")
    back = Network.load(path)
    assert back.architecture == arch and back.fingerprint() == net.fingerprint()
    for k, g in net.conductances.items():
        np.testing.assert_array_equal(back.conductances[k], g)
    # without inverted copies nothing is written for them: older files and fingerprints stay as they were
    plain = architecture_to_dict(make_architecture("5-4-3-2", amplifier_gain=2.0))
    assert all("inverted_copy" not in h for h in plain["hidden"])
    with pytest.raises(NetworkError, match=r"crossbar \(1, 2\).*expected \(8, 3\)"):
        Network(arch, {k: (np.full((4, 3), 1e-6) if k == (1, 2) else g) for k, g in net.conductances.items()})
    with pytest.raises(NetworkError, match="inverted copy is an output of the amplifier"):
        Network.random(make_architecture("5-4-3-2", inverted_copies=True))
    with pytest.raises(NetworkError, match="not supported with wire resistance"):
        Network.random(make_architecture("5-4-3-2", amplifier_gain=2.0, inverted_copies=True, wire_resistance=1.0))


def test_backward_gain_goes_to_the_amplified_layers_and_survives_a_round_trip(tmp_path):
    arch = make_architecture("5-4-3-3-2", amplifier_gain=[4.0, 0.0, 2.0], backward_gain=0.25)
    assert [h.current_gain for h in arch.hidden] == [0.25, 1.0, 0.25]  # the layer without amplifier keeps 1
    assert [h.forward_gain for h in arch.hidden] == [4.0, 1.0, 2.0]
    assert [h.backward_gain for h in make_architecture("5-4-3-2", amplifier_gain=2.0, backward_gain=[0.5, 0]).hidden
            ] == [0.5, None]
    net = Network.random(arch, seed=2)
    back = Network.load(net.save(tmp_path / "backward.npz"))
    assert back.architecture == arch and back.fingerprint() == net.fingerprint()
    with pytest.raises(NetworkError, match="2 backward gains given for 3 hidden layers"):
        make_architecture("5-4-3-3-2", amplifier_gain=2.0, backward_gain=[0.5, 0.5])
    with pytest.raises(NetworkError, match="no hidden layer of 5-4-3-2 has an amplifier"):
        make_architecture("5-4-3-2", backward_gain=0.5)
    with pytest.raises(NetworkError, match="hidden layer 2: backward_gain given without amplifier_gain"):
        Network.random(make_architecture("5-4-3-3-2", amplifier_gain=[4.0, 0.0, 2.0], backward_gain=[1, 1, 1]))
