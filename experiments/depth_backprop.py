"""Issue 24: the backpropagation reference of the depth table (same layer sizes, skip crossbars and clipping
activation as the circuits), trained in NumPy by circuitprop.learning.BackpropMLP.

Each (dataset, topology, seed) is one run written atomically to
experiments/results/depth/backprop/e<epochs>/<dataset>_<topology>_s<seed>[_lr<rate>_b<batch>_val].json; a rerun skips finished runs, so
the script can be interrupted at any time.  --validation trains on the first 50,000 training images and
scores the last 10,000 (for choosing settings); without it, the full training set and the test set.

With ``--optimizer adam`` the network is trained by Adam with one step size for every matrix (Adam divides
each weight's step by its own gradient scale, so no fan-in rule is needed); those runs carry ``_adam`` in
their file names.

Run:  .venv/bin/python experiments/depth_backprop.py [--datasets mnist fashion-mnist] [--seeds 0]
          [--topologies 1H 2H 3H 2H+skip 3H+skip] [--epochs 20] [--validation] [--optimizer adam]
          [--nonnegative-hidden]

With ``--nonnegative-hidden`` the matrices between hidden layers are kept >= 0, as the circuit's conductances
are (a hidden layer has no inverted copy): whether backpropagation's gain from depth survives that constraint.
"""
import argparse
import json
import os
import platform
import time
from pathlib import Path

from circuitprop.io.datasets import load_dataset
from circuitprop.io.files import atomic_write_bytes
from circuitprop.learning import BackpropMLP

OUT = Path(__file__).resolve().parent / "results" / "depth" / "backprop"
#: The depth table's topologies (1024 neurons per hidden layer); "+skip": crossbars from the inputs to every
#: hidden layer and from every hidden layer to the outputs.
TOPOLOGIES = {
    "1H": ("784-1024-10", ()),
    "1H-3072": ("784-3072-10", ()),
    "2H": ("784-1024-1024-10", ()),
    "3H": ("784-1024-1024-1024-10", ()),
    "2H+skip": ("784-1024-1024-10", ((0, 2), (1, 3))),
    "3H+skip": ("784-1024-1024-1024-10", ((0, 2), (0, 3), (1, 4), (2, 4))),
}


def rates_by_fan_in(layers, skip, rate):
    """One SGD step size per weight matrix (BackpropMLP's order: dense, then skips): ``rate`` over the fan-in
    of the layer the matrix feeds."""
    sizes = [int(n) for n in layers.split("-")]
    matrices = [(i, i + 1) for i in range(len(sizes) - 1)] + [tuple(p) for p in skip]
    fan_in = {b: sum(sizes[a] for a, bb in matrices if bb == b) for b in range(1, len(sizes))}
    return [rate / fan_in[b] for _, b in matrices]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--topologies", nargs="+", default=list(TOPOLOGIES), choices=list(TOPOLOGIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=10.0,
                        help="step size times fan-in: each weight matrix into layer b steps by this over the "
                             "number of inputs of layer b (with activations in [0, 1], not centred, the "
                             "loss's largest curvature grows with the fan-in; one step size for all "
                             "diverges in the deep skip networks)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="sgd: heavy-ball momentum 0.9, step sizes by fan-in (--learning-rate); adam: Adam "
                             "(beta1 0.9, beta2 0.999), --learning-rate is its one step size")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--validation", action="store_true", help="score the last 10,000 training images")
    parser.add_argument("--augment-shift", type=int, default=0,
                        help="random translations of the training images by up to this many pixels (0: none)")
    parser.add_argument("--augment-flip", action="store_true",
                        help="mirror a random half of the training images left to right, a new half every epoch")
    parser.add_argument("--nonnegative-hidden", action="store_true",
                        help="keep the matrices between hidden layers >= 0, as the circuit's conductances from a "
                             "hidden layer without inverted copies (files tagged _nonneg)")
    args = parser.parse_args()
    data_dir = os.environ.get("CIRCUITPROP_DATA")
    for dataset in args.datasets:
        X, y, Xt, yt = load_dataset(dataset, data_dir)
        if args.validation:
            X, y, Xt, yt = X[:-10000], y[:-10000], X[-10000:], y[-10000:]
        for name in args.topologies:
            layers, skip = TOPOLOGIES[name]
            for seed in args.seeds:
                tag = f"_lr{args.learning_rate:g}_b{args.batch_size}_val" if args.validation else ""
                tag += "_adam" if args.optimizer == "adam" else ""
                tag += f"_shift{args.augment_shift}" if args.augment_shift else ""
                tag += "_flip" if args.augment_flip else ""
                tag += "_nonneg" if args.nonnegative_hidden else ""
                path = OUT / f"e{args.epochs}" / f"{dataset}_{name}_s{seed}{tag}.json"
                if path.exists():
                    print(f"{path.name}: done")
                    continue
                model = BackpropMLP(layers=layers, skip=skip, epochs=args.epochs, batch_size=args.batch_size,
                                    learning_rate=(args.learning_rate if args.optimizer == "adam" else
                                                   rates_by_fan_in(layers, skip, args.learning_rate)),
                                    optimizer=args.optimizer, seed=seed,
                                    augment_shift=args.augment_shift, augment_flip=args.augment_flip,
                                    nonnegative_hidden=args.nonnegative_hidden, verbose=False)
                t0 = time.perf_counter()
                model.fit(X, y, eval_set=(Xt, yt))
                record = {"dataset": dataset, "topology": name, "params": {**model.get_params(), "skip": skip},
                          "evaluated_on": "validation: the last 10000 training images" if args.validation
                          else "test set", "history": model.history_,
                          "test_accuracy": model.history_[-1]["test_accuracy"],
                          "wall_seconds": time.perf_counter() - t0, "host": platform.node()}
                atomic_write_bytes(path, json.dumps(record, indent=1).encode())
                print(f"{path.name}: {100 * record['test_accuracy']:.2f} % in {record['wall_seconds']:.0f} s",
                      flush=True)


if __name__ == "__main__":
    main()
