"""Checkpoint files: everything a training needs to go on exactly where it stopped.

A checkpoint is a circuitprop ``.npz`` file (:func:`circuitprop.io.files.atomic_savez`, written atomically)
holding a JSON spec and arrays:

* ``params``: every setting by its flat name (:data:`circuitprop.config.FLAT`);
* ``position``: ``[epoch, batch]`` of the next batch to run; ``rng``: the state of the trainer's random
  generator; ``history``: the per-epoch records; ``epoch_loss``: ``[sum, count]`` of the epoch so far;
* arrays ``g_A_B`` (the conductances of crossbar A-B, siemens) and ``velocity_A_B`` (the optimizer's momentum).

The reader trusts nothing: settings are checked against their declarations, array shapes against the
architecture the settings describe, before anything is decompressed.  Files of earlier releases load: a
setting they lack takes the value those releases used (:data:`circuitprop.config.LEGACY`).
"""
from __future__ import annotations

import json

import numpy as np

from ..config import CONFIGS, FLAT, LEGACY, OPTIONAL_IN_FILES, TrainingConfig, architecture_from, split
from ..declare import plain
from ..errors import ConfigError, NetworkError
from ..io.files import atomic_savez, load_npz_with_spec

FORMAT = "circuitprop-checkpoint"
VERSION = 1


def jsonable(value):
    """A JSON round trip of ``value`` (numpy integers and objects with ``to_dict`` made plain)."""
    return json.loads(json.dumps(value, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else int(o)))


def write_checkpoint(path, settings: dict, state: dict, arrays: dict):
    """Write a checkpoint atomically: ``settings`` (flat), ``state`` (position, rng, history, epoch_loss),
    ``arrays`` (``g_A_B``, ``velocity_A_B``)."""
    spec = {"format": FORMAT, "version": VERSION, "params": {k: plain(v) for k, v in settings.items()},
            "position": list(state["position"]), "rng": jsonable(state["rng"]), "history": state["history"],
            "epoch_loss": list(state["epoch_loss"])}
    return atomic_savez(path, spec=spec, **arrays)


def read_checkpoint(path) -> tuple:
    """``(settings, state, arrays)`` of a checkpoint; :class:`ValueError` naming the file and the entry
    when anything is missing, malformed, out of range or of the wrong shape."""
    box = {}

    def members(spec):
        for key in ("params", "position", "rng", "history"):
            if key not in spec:
                raise NetworkError(f"{path}: checkpoint has no {key!r} entry")
        params = spec["params"]
        if not isinstance(params, dict):
            raise NetworkError(f"{path}: checkpoint params must be an object, got {params!r:.80}")
        params = dict(params)
        for key, value in LEGACY.items():
            params.setdefault(key, value)
        missing = sorted(set(FLAT) - set(params) - OPTIONAL_IN_FILES)
        unknown = sorted(set(params) - set(FLAT))
        if missing or unknown:
            raise NetworkError(f"{path}: checkpoint params {'lack ' + str(missing) if missing else ''}"
                               f"{' and ' if missing and unknown else ''}"
                               f"{'have unknown ' + str(unknown) if unknown else ''}")
        try:
            groups, top = split(params)
            configs = {name: CONFIGS[name](**groups.get(name, {})) for name in CONFIGS}
            TrainingConfig(**top)
            arch = architecture_from(configs["circuit"], configs["neuron"])
        except (ConfigError, NetworkError, ValueError, TypeError) as exc:
            raise NetworkError(f"{path}: checkpoint settings do not make a network: {exc}") from None
        position = spec["position"]
        if not (isinstance(position, list) and len(position) == 2
                and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in position)):
            raise NetworkError(f"{path}: checkpoint position must be [epoch, batch], got {position!r:.80}")
        if not isinstance(spec["history"], list) or not all(isinstance(h, dict) for h in spec["history"]):
            raise NetworkError(f"{path}: checkpoint history must be a list of objects")
        epoch_loss = spec.get("epoch_loss", [0.0, 0])
        if not (isinstance(epoch_loss, list) and len(epoch_loss) == 2):
            raise NetworkError(f"{path}: checkpoint epoch_loss must be [sum, count]")
        box.update(params=params, arch=arch)
        shapes = {}
        for a, b in arch.crossbars:
            shapes[f"g_{a}_{b}"] = shapes[f"velocity_{a}_{b}"] = arch.crossbar_shape(a, b)
        return shapes

    try:
        spec, arrays = load_npz_with_spec(path, FORMAT, members)
        arch = box["arch"]
        missing = [f"g_{a}_{b}" for a, b in arch.crossbars if f"g_{a}_{b}" not in arrays]
        if missing:
            raise NetworkError(f"{path}: checkpoint lacks conductance array(s) {missing}")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = spec["rng"]
        except (TypeError, ValueError, KeyError) as exc:
            raise NetworkError(f"{path}: checkpoint RNG state is malformed ({exc})") from None
    except NetworkError as exc:
        raise ValueError(str(exc)) from None
    epoch_loss = spec.get("epoch_loss", [0.0, 0])
    state = {"position": tuple(spec["position"]), "rng": rng, "history": spec["history"],
             "epoch_loss": [float(epoch_loss[0]), int(epoch_loss[1])], "architecture": arch}
    return box["params"], state, arrays
