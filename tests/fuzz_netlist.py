"""Fuzz the netlist reader: random mutations of real netlists, counted crashes, hangs and tracebacks.

Every mutated text goes through :func:`circuitprop.netlist.parse_netlist`. The reader must either return a
circuit or raise its own clear error (:class:`~circuitprop.netlist.NetlistError`, or
:class:`~circuitprop.model.NetworkError` for a value that makes no circuit); anything else is a *traceback*,
a parse that takes longer than ``--hang`` seconds is a *hang*, and a mutation that gets executable content
(``.control``, ``shell``, ``.include``, ...) into the netlist that circuitprop renders for ngspice is a *breach*.
Accepted circuits are rendered again, and the rendering must read back to the same circuit.

    .venv/bin/python tests/fuzz_netlist.py --mutations 5000 --seed 1      # the campaign (README's figures)

``tests/test_fuzz.py`` runs a short campaign on every test run.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from circuitprop.model import NetworkError
from circuitprop.netlist import NetlistError, parse_netlist, render

ROOT = Path(__file__).resolve().parent.parent

SEEDS = [
    "divider\nv1 1 0 1\nr1 1 2 1k\nr2 2 0 1k\n.end\n",
    "diode\nv1 a 0 dc 1\nr1 a b 1k\nd1 b gnd dm\n.model dm d is=1e-14 n=1.2 rs=2\n.op\n.end\n",
    "amp\n.param gain=3\n.param x0={0.5*gain}\nvx x 0 {x0}\nr1 x h 1k\ne1 a 0 h 0 3\nvs a a2 dc 0\n"
    "r2 a2 o 2k\nr3 o 0 5k\nf1 h 0 vs 3\ni1 0 o 1u\n.options reltol=1e-4 gmin=1e-12\n.end\n",
    (ROOT / "netlists" / "example-4-3-2.ngspice.cir").read_text(),  # what circuitprop exports
]

#: Tokens a mutation may insert: SPICE keywords (dangerous ones included), odd numbers and names.
TOKENS = [".control", ".endc", "shell", "rm -rf /", ".include", "/etc/passwd", ".lib", ".exec", ".param",
          ".options", ".model", ".end", ".op", ".title", "+", "*", ";", "$", "=", "{", "}", "(", ")", "{p}", "{2*p}",
          "{p+1}", "0", "gnd", "1", "-1", "1e308", "1e-320", "-0", "nan", "inf", "1k", "1meg", "1mil", "1e", "e5",
          "..5", "1.2.3", "temper", "time", "hertz", "r", "d", "v", "i", "e", "f", "b1", "x1", "k1", "l1", "c1",
          "dc", "ac", "pwl(0 1)", "sin(0 1 1k)", "is=0", "n=-1", "rs=1e12", "reltol=1e6", "rshunt=1", "temp=300",
          "\x00", "\u00e9", "\t", "a" * 70, "9" * 400, "x" * 12000]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        i = rng.randrange(len(lines)) if lines else 0
        if op == 0 and lines:
            del lines[i]
        elif op == 1 and lines:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2 and len(lines) > 1:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3 and lines:
            words = lines[i].split(" ")
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOKENS))
            lines[i] = " ".join(words)
        elif op == 4 and lines:
            words = lines[i].split(" ")
            words[rng.randrange(len(words))] = rng.choice(TOKENS)
            lines[i] = " ".join(words)
        elif op == 5 and lines and lines[i]:
            k = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:k] + chr(rng.randrange(1, 128)) + lines[i][k + 1:]
        elif op == 6:
            lines.insert(i, " ".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 5))))
        elif op == 7 and lines:
            lines[i] = "+ " + lines[i]
        elif op == 8:
            cut = rng.randrange(len(text) + 1)
            return "\n".join(lines)[:cut]
    return "\n".join(lines)


#: Cards that run commands or read files; the dot commands circuitprop's writer emits.
DANGEROUS_CARDS = {".control", ".endc", "shell", "exec", "source", "sh", "system", ".include", ".inc", ".lib",
                   ".exec", ".func", ".csparam"}
SAFE_DOTS = {".model", ".param", ".options", ".op", ".end", ".title"}


def campaign(mutations: int, seed: int = 0, hang: float = 2.0) -> dict:
    """Run ``mutations`` mutated netlists through the reader; returns the counts and the first failures."""
    rng = random.Random(seed)
    counts = {"mutations": 0, "accepted": 0, "refused": 0, "tracebacks": 0, "hangs": 0, "breaches": 0,
              "round_trip_failures": 0, "slowest_seconds": 0.0}
    failures = []
    for n in range(mutations):
        text = mutate(rng.choice(SEEDS), rng)
        counts["mutations"] += 1
        start = time.perf_counter()
        try:
            circuit = parse_netlist(text, "<fuzz>")
        except (NetlistError, NetworkError):
            counts["refused"] += 1
            circuit = None
        except Exception as exc:  # noqa: BLE001 - what the campaign counts
            counts["tracebacks"] += 1
            failures.append((n, f"{type(exc).__name__}: {exc}", text))
            circuit = None
        elapsed = time.perf_counter() - start
        counts["slowest_seconds"] = max(counts["slowest_seconds"], elapsed)
        if elapsed > hang:
            counts["hangs"] += 1
            failures.append((n, f"hang: {elapsed:.1f} s", text))
        if circuit is None:
            continue
        counts["accepted"] += 1
        try:
            rendered = render(circuit, "ngspice", options=circuit.options or None)
            again = parse_netlist(rendered, "<rendered>")
            same = [(e.kind, e.name, e.nodes) for e in again.elements] == [(e.kind, e.name, e.nodes)
                                                                            for e in circuit.elements]
        except Exception as exc:  # noqa: BLE001
            rendered, same = "", False
            failures.append((n, f"round trip: {type(exc).__name__}: {exc}", text))
        if not same:
            counts["round_trip_failures"] += 1
        # what ngspice would see: no line of the rendering (the title line aside) may start a command
        for line in rendered.split("\n")[1:]:
            words = line.strip().lower().split()
            if words and (words[0] in DANGEROUS_CARDS or words[0].startswith(".") and words[0] not in SAFE_DOTS):
                counts["breaches"] += 1
                failures.append((n, f"rendered line {line[:60]!r}", text))
                break
    counts["slowest_seconds"] = round(counts["slowest_seconds"], 4)
    return {"counts": counts, "failures": failures[:20]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = campaign(args.mutations, args.seed)
    print(result["counts"], f"in {time.perf_counter() - t0:.1f} s")
    for n, what, text in result["failures"]:
        print(f"--- mutation {n}: {what}\n{text[:300]!r}")
    bad = result["counts"]
    return 1 if bad["tracebacks"] or bad["hangs"] or bad["breaches"] or bad["round_trip_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
