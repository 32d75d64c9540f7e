"""Every setting is declared once (circuitprop.config); the command line, checks, checkpoints, sweeps and the
estimator's parameters are derived from the declarations."""
import argparse
import ast
import re
import copy
import dataclasses
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import circuitprop
from circuitprop import config
from circuitprop.cli import build_parser
from circuitprop.declare import declared, default_of
from circuitprop.errors import ConfigError
from circuitprop.learning import EPTrainer
from circuitprop.learning.ep import ESTIMATORS, RULES
from circuitprop.learning.optimizers import SCHEDULES
from circuitprop.model import DiodeModel
from circuitprop.model.devices import PRESETS

PACKAGE = Path(circuitprop.__file__).parent


def _subparser(name):
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _options(name):
    """``{dest: action}`` of a subcommand's options."""
    return {a.dest: a for a in _subparser(name)._actions if a.option_strings}


@pytest.mark.parametrize("command", ["train", "init"])
def test_every_cli_default_is_its_declared_default(command):
    options = _options(command)
    checked = 0
    for name, group in config.FLAT.items():
        cls = config.TrainingConfig if group is None else config.CONFIGS[group]
        field, spec = declared(cls)[name]
        if name not in options:
            continue
        default = options[name].default
        expected = default_of(field)
        if name in ("skip", "drop"):
            expected = None  # repeated --skip / --drop A-B options: none given means none added or left out
        assert default == expected, f"{command} --{name}: {default!r} != declared {expected!r}"
        checked += 1
    assert checked >= (40 if command == "train" else 20)


def test_train_offers_every_declared_setting_and_init_the_circuit_ones():
    train, init = _options("train"), _options("init")
    for name, group in config.FLAT.items():
        cls = config.TrainingConfig if group is None else config.CONFIGS[group]
        if declared(cls)[name][1].cli:
            assert name in train, name
    for cls in (config.CircuitConfig, config.NeuronConfig):
        assert set(declared(cls)) <= set(init)


def test_the_same_setting_has_the_same_range_in_init_and_train(capsys):
    from circuitprop.cli import main
    for command in (["train"], ["init", "-o", "x.npz"]):
        for option, value in (("--diode-is", "2"), ("--amplifier-gain", "-1"), ("--input-gain", "0")):
            with pytest.raises(SystemExit):
                main(command + [option, value])
            assert f"argument {option}" in capsys.readouterr().err


def test_setting_names_are_unique_and_choices_match_the_registries():
    names = [n for cls in list(config.CONFIGS.values()) + [config.TrainingConfig] for n in declared(cls)]
    assert len(names) == len(set(names))
    assert set(config.ESTIMATORS) == set(ESTIMATORS)
    assert set(config.RULES) == set(RULES)
    assert set(config.SCHEDULES) == set(SCHEDULES)
    assert set(declared(config.DeviceConfig)["device"][1].choices) == set(PRESETS)


def test_diode_settings_share_the_model_declaration():
    """NeuronConfig's diode fields take DiodeModel's declarations: one default and one range."""
    for name in ("saturation_current", "emission_coefficient", "series_resistance", "spice_ideal_n"):
        f_model, s_model = declared(DiodeModel)[name]
        f_config, s_config = declared(config.NeuronConfig)[name]
        assert default_of(f_model) == default_of(f_config)
        assert (s_model.low, s_model.high, s_model.unit) == (s_config.low, s_config.high, s_config.unit)
    with pytest.raises(ConfigError, match=r"saturation_current must be a finite number > 0 and <= 1 \(A\)"):
        config.NeuronConfig(saturation_current=1e10)


def test_get_params_and_set_params_follow_scikit_learn():
    trainer = EPTrainer(layers="5-4-3", beta=2e-6, learning_rate=[1e3, 2e3])
    params = trainer.get_params()
    assert params["ep__beta"] == 2e-6 and params["circuit__layers"] == "5-4-3"
    assert params["optimizer__learning_rate"] == [1e3, 2e3]
    shallow = trainer.get_params(deep=False)
    assert set(shallow) == set(config.CONFIGS) | set(declared(config.TrainingConfig)) | {"warm_start"}
    clone = EPTrainer(**copy.deepcopy(shallow))  # what sklearn.base.clone does
    assert clone.settings() == trainer.settings()
    trainer.set_params(optimizer__learning_rate=5e4, noise_sigma=1e-3, epochs=2)
    assert trainer.optimizer.learning_rate == 5e4 and trainer.ep.noise_sigma == 1e-3 and trainer.epochs == 2
    assert trainer.beta == 2e-6  # a setting read by its own name
    assert clone.optimizer.learning_rate == [1e3, 2e3]  # the clone's configs are its own
    trainer.set_params(devices__g_min=1e-6, devices__g_max=1e-5)  # changed together: checked together
    with pytest.raises(ConfigError, match="g_min < g_max"):
        trainer.set_params(g_min=1e-4)
    with pytest.raises(ValueError, match="unknown parameter"):
        trainer.set_params(ep__betta=1.0)
    with pytest.raises(ConfigError, match=r"ep must be a EPConfig \(or a dict of its settings\)"):
        EPTrainer(ep=3)


def test_fit_with_an_evaluation_set_or_a_validation_fraction():
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (40, 5)), rng.integers(0, 3, 40)
    kw = dict(layers="5-4-3", epochs=1, batch_size=8, verbose=False, learning_rate=1e3, g_init=(1e-6, 1e-5))
    by_fraction = EPTrainer(**kw).fit(X, y, validation_fraction=0.25)
    by_set = EPTrainer(**kw).fit(X[:30], y[:30], eval_set=(X[30:], y[30:]))
    assert by_fraction.history_[0]["test_accuracy"] == by_set.history_[0]["test_accuracy"]
    for key, g in by_set.network_.conductances.items():
        np.testing.assert_array_equal(g, by_fraction.network_.conductances[key])
    with pytest.raises(ValueError, match="not both"):
        EPTrainer(**kw).fit(X, y, eval_set=(X, y), validation_fraction=0.1)


def test_settings_round_trip_through_plain_dicts():
    for cls in config.CONFIGS.values():
        value = cls()
        assert cls.from_dict(value.to_dict()) == value
    with pytest.raises(ConfigError, match="unknown EPConfig settings"):
        config.EPConfig.from_dict({"betta": 1.0})


def _imports(path: Path, module: str) -> set:
    """Modules of the package that ``module`` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text())
    out = set()
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            candidates = [target] + ([f"{target}.{a.name}" for a in node.names] if not node.module or True else [])
            for c in candidates:
                if _module_path(c) is not None:
                    out.add(c)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("circuitprop"))
    return out


def _module_path(name: str):
    rel = Path(*name.split(".")[1:])
    root = PACKAGE.parent / "circuitprop"
    for candidate in (root / rel.with_suffix(".py") if rel.parts else None, root / rel / "__init__.py"):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def _graph():
    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        graph.add_node(module)
        for target in _imports(path, module):
            if target != module:
                graph.add_edge(module, target)
    return graph


def test_the_package_has_no_import_cycles():
    graph = _graph()
    assert graph.number_of_nodes() > 40
    # a package's __init__ re-exports its children; the cycle that matters is between modules
    modules = graph.subgraph(n for n in graph if _module_path(n).name != "__init__.py")
    cycles = list(nx.simple_cycles(modules))
    assert cycles == [], cycles


#: Rooms from the bottom up: a module may import only from its own room or from rooms below it.
LAYERS = ["circuitprop._version", "circuitprop.errors", "circuitprop.declare", "circuitprop.io", "circuitprop.model",
          "circuitprop.kernels", "circuitprop.netlist", "circuitprop.backends", "circuitprop.config",
          "circuitprop.learning", "circuitprop.studies", "circuitprop.cli"]


def _room(module):
    return max((i for i, room in enumerate(LAYERS) if module == room or module.startswith(room + ".")), default=None)


def test_no_module_reaches_up_the_layers():
    graph = _graph()
    for a, b in graph.edges:
        ra, rb = _room(a), _room(b)
        if ra is None or rb is None:  # circuitprop/__init__ and __main__ sit above every room
            continue
        assert rb <= ra, f"{a} imports {b}, a room above it"


def test_the_model_does_not_import_kernels_or_backends():
    graph = _graph()
    for a, b in graph.edges:
        if a.startswith("circuitprop.model"):
            assert not b.startswith(("circuitprop.kernels", "circuitprop.backends")), (a, b)


def test_imports_sit_at_module_top_except_optional_dependencies():
    optional = {"dask", "distributed", "pandas", "matplotlib", "matplotlib.pyplot", "PySpice", "numba",
                "threadpoolctl", "fcntl", "pickle", "subprocess", "zipfile", "hashlib", "difflib"}
    late = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.level:
                        late.append(f"{path.relative_to(PACKAGE)}:{inner.lineno} from {'.' * inner.level}{inner.module}")
    assert late == [], late


#: Every option of release 0.1.0's train, init and eval, with a value of that release's form.
OLD_OPTIONS = {
    "train": ["--dataset mnist", "--data-dir d", "--size 14", "--layers 196-32-10", "--backend fast", "--beta 1e-6",
              "--estimator one-sided", "--rule sign", "--lr 3e5", "--lr 3e5 3e4", "--lr-decay 0.9",
              "--lr-schedule exponential", "--momentum 0.5", "--sign-sgd", "--noise-sigma 0.01", "--noise-samples 4",
              "--epochs 3", "--batch-size 16", "--limit-train 100", "--limit-test 10", "--amplifier-gain 0",
              "--diode shockley", "--diode-model 1n4148", "--spice-ideal-n 0.001", "--g-min 1e-8", "--g-max 1e-4",
              "--target 0.02", "--input-gain 30", "--no-bias-input", "--solver-sweeps 4", "--spice-workers 2",
              "--device reram", "--wire-resistance 10", "--wire-layout node-order", "--dtype float32", "--seed 1",
              "-o out/m.npz", "--checkpoint c.npz", "--resume", "--overwrite", "--log l.jsonl", "--check-spice 20",
              "--export spectre"],
    "init": ["--layers 3-2-2", "--seed 1", "--g-min 1e-7", "--g-max 1e-5", "--v-low -0.1", "--v-high 0.6",
             "--diode ideal", "--diode-is 1e-12", "--diode-n 1.5", "--diode-rs 10", "--diode-model generic",
             "--spice-ideal-n 0.01", "--amplifier-gain 2", "--skip 0-2", "--single-inputs", "--single-outputs",
             "--bias-input", "--input-gain 2", "--wire-resistance 1", "--wire-layout interleaved", "--name n"],
    "eval": ["--dataset kmnist", "--data-dir d", "--size 28", "--backend spice", "--limit 10", "--flat",
             "--spice-workers 2", "--wire-resistance 1", "--wire-layout node-order", "--energy", "--settling 3",
             "--capacitance 1e-12", "--settling-tolerance 1e-3"],
}


@pytest.mark.parametrize("command", sorted(OLD_OPTIONS))
def test_every_option_of_release_0_1_still_parses(command):
    parser = build_parser()
    required = {"train": [], "init": ["-o", "m.npz"], "eval": ["m.npz"]}[command]
    for option in OLD_OPTIONS[command]:
        args = parser.parse_args([command] + required + option.split())
        assert args.command == command, option
    old = parser.parse_args(["init", "-o", "m.npz", "--single-inputs", "--single-outputs", "--diode-model", "1n4148"])
    assert (old.doubled_inputs, old.doubled_outputs, old.diode) == (False, False, "1n4148")
    lr = parser.parse_args(["train", "--lr", "3e5", "3e4"])
    assert lr.learning_rate == [3e5, 3e4]


def test_device_parameters_are_named_wherever_they_come_from():
    from circuitprop.studies.sweep import SweepError, check_spec
    bad = {"name": "x", "pieces": [{"type": "DeviceToDevice", "sigma": 0.1, "seed": -1}]}
    with pytest.raises(ConfigError, match="DeviceConfig.device: DeviceToDevice.seed must be an integer >= 0, got -1"):
        EPTrainer(device=bad)
    with pytest.raises(SweepError, match=r"ReadNoise.sigma must be a finite number >= 0 and <= 100, got 1e\+308"):
        check_spec({"base": {"device": {"name": "x", "pieces": [{"type": "ReadNoise", "sigma": 1e308}]}}})


@pytest.mark.parametrize("argv, match", [
    (["train", "--backend", "spice", "--solver-sweeps", "4"], "solver_sweeps applies to the fast backend"),
    (["train", "--no-fold-inputs"], "applies to the spice backend"),
    (["eval", "m.npz", "--settling", "5"], "give --energy with it"),
    (["eval", "m.npz", "--energy", "--capacitance", "2e-12"], "apply to --settling"),
    (["eval", "m.npz", "--flat"], "apply to --backend spice"),
])
def test_options_that_would_do_nothing_are_refused(argv, match, capsys):
    from circuitprop.cli import main
    assert main(argv) == 2
    assert re.search(match, capsys.readouterr().err)
