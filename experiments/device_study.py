"""Device study: 784-100-10 MNIST accuracy versus number of conductance states, step asymmetry and
device-to-device spread (real-circuits issue, item 3).

Run:  .venv/bin/python experiments/device_study.py [--epochs 2] [--seeds 0] [--results experiments/results/devices]

Each axis is a sweep (circuitprop.studies.sweep on Dask, resumable: a killed study redoes only the missing runs) of the
train defaults with a device range of [1e-8, 1e-5] S (trained conductances of result 1 lie below 3.4e-5 S,
99 % below 4.4e-6 S) and one device piece varied:

* states: QuantizedStates(n) with nearest-level writes, n = 8 ... 1024, and with stochastic rounding;
* asymmetry: AsymmetricSteps.from_asymmetry(a) (up steps x (1 + a), down x (1 - a));
* device-to-device: DeviceToDevice(sigma) (fixed per-device step scale).

Writes the runs, ``devices.csv`` and ``device_study.png`` into the results folder.
"""
import argparse
from pathlib import Path

from circuitprop.io.files import atomic_write_bytes
from circuitprop.studies.plots import plot_device_study
from circuitprop.studies.sweep import load_results, run_sweep

STATES = [8, 16, 32, 64, 128, 256, 1024]
ASYMMETRY = [0.0, 0.05, 0.1, 0.2, 0.4, 0.6]
SPREAD = [0.0, 0.1, 0.3, 0.5, 1.0]


def device(piece: dict) -> dict:
    return {"name": piece["type"], "pieces": [piece]}


def specs(epochs, seeds, data_dir):
    base = {"dataset": "mnist", "layers": "784-100-10", "epochs": epochs, "g_max": 1e-5}
    if data_dir:
        base["data_dir"] = data_dir
    axes = {
        "states": [device({"type": "QuantizedStates", "n_states": n, "stochastic": False}) for n in STATES]
        + [device({"type": "QuantizedStates", "n_states": n, "stochastic": True}) for n in STATES],
        "asymmetry": [device({"type": "AsymmetricSteps", "up": 1 + a, "down": 1 - a}) for a in ASYMMETRY],
        "spread": [device({"type": "DeviceToDevice", "sigma": s, "seed": 0}) for s in SPREAD],
    }
    return {name: {"name": f"devices-{name}", "base": base, "axes": {"device": values, "seed": list(seeds)}}
            for name, values in axes.items()}


def describe(dev: dict):
    """(axis, x value, variant) of a run's device."""
    piece = dev["pieces"][0]
    kind = piece["type"]
    if kind == "QuantizedStates":
        return "states", piece["n_states"], "stochastic rounding" if piece["stochastic"] else "nearest level"
    if kind == "AsymmetricSteps":
        return "asymmetry", round((piece["up"] - piece["down"]) / 2, 6), ""
    return "spread", piece["sigma"], ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--results", default="experiments/results/devices")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    out = Path(args.results)
    rows = []
    for name, spec in specs(args.epochs, args.seeds, args.data_dir).items():
        counts = run_sweep(spec, out / name, n_workers=args.workers, retry_failed=True)
        print(f"{name}: {counts}")
        df = load_results(out / name)
        for _, run in df.iterrows():
            axis, x, variant = describe(run["device"])
            rows.append({"axis": axis, "x": x, "variant": variant, "seed": run["seed"], "status": run["status"],
                         "test_accuracy": run["test_accuracy"]})
    import pandas as pd
    table = pd.DataFrame(rows).sort_values(["axis", "variant", "x", "seed"])
    atomic_write_bytes(out / "devices.csv", table.to_csv(index=False).encode())
    print(table.to_string(index=False))
    plot_device_study(table, out / "device_study.png")
    print(f"wrote {out / 'devices.csv'} and {out / 'device_study.png'}")


if __name__ == "__main__":
    main()
