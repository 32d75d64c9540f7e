"""Issue 25: tables and figures of the full-scale noise study from its sweep results.

Reads experiments/results/full_scale/noise/runs (the grid: noise_grid_N*.toml) and
experiments/results/full_scale/beta_lr_maps/runs, and writes into experiments/results/full_scale/:
  curves.csv, critical_levels.csv, power_law.csv, table1.csv, summary.md (the tables RESULTS.md quotes),
  accuracy_vs_noise.png, critical_vs_samples.png, beta_lr_maps.png.
Cells that are still running are left out (the summary says how many runs each cell has).

Run:  .venv/bin/python experiments/full_scale_noise.py [--boot 2000]
"""
import argparse
from pathlib import Path

import numpy as np

from circuitprop.io.files import atomic_write_bytes
from circuitprop.studies.noise import critical_analysis, noise_curves, table_one
from circuitprop.studies.plots import plot_beta_lr_maps, plot_critical_power_law, plot_noise_curves_by_samples
from circuitprop.studies.sweep import load_results

ROOT = Path(__file__).resolve().parent / "results" / "full_scale"


def _write(path, text):
    atomic_write_bytes(path, text.encode())
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap draws (default 2000)")
    args = parser.parse_args()
    df = load_results(ROOT / "noise")
    if "noise_inputs" not in df or not df["noise_inputs"].eq(False).all():
        raise SystemExit(f"{ROOT / 'noise'}: every run of the grid has noise_inputs = false (the paper's model); "
                         "runs of the other model belong in their own folder")
    ok = df[df["status"] == "ok"]
    failed = df[df["status"] != "ok"]
    curves = noise_curves(df)
    critical, law = critical_analysis(df, n_boot=args.boot)
    table = table_one(df)
    atomic_write_bytes(ROOT / "curves.csv", curves.to_csv(index=False).encode())
    atomic_write_bytes(ROOT / "critical_levels.csv", critical.to_csv(index=False).encode())
    atomic_write_bytes(ROOT / "power_law.csv", law.to_csv(index=False).encode())
    atomic_write_bytes(ROOT / "table1.csv", table.to_csv(index=False).encode())
    print(f"wrote {plot_noise_curves_by_samples(curves, critical, ROOT / 'accuracy_vs_noise.png')}")
    print(f"wrote {plot_critical_power_law(critical, law, ROOT / 'critical_vs_samples.png')}")

    md = [f"Runs: {len(ok)} finished, {len(failed)} failed; wall time of the finished runs "
          f"{ok['wall_seconds'].sum() / 3600:.2f} worker-hours.", ""]
    md += ["| dataset | N | sigma_c (V) | 95 % interval (V) | per seed (V) | seeds | sigma points |",
           "|---|---|---|---|---|---|---|"]
    for r in critical.itertuples():
        seeds = ", ".join(f"{s:.3g}" for s in r.seed_sigma_c)
        md.append(f"| {r.dataset} | {r.noise_samples} | {r.sigma_c:.3g} | [{r.sigma_c_low:.3g}, {r.sigma_c_high:.3g}] "
                  f"| {seeds} | {r.seeds} | {r.sigmas} |")
    md += ["", "| dataset | exponent k (sigma_c ~ N^k) | 95 % bootstrap interval | least-squares std. error | N values |",
           "|---|---|---|---|---|"]
    for r in law.itertuples():
        md.append(f"| {r.dataset} | {r.exponent:.3f} | [{r.exponent_low:.3f}, {r.exponent_high:.3f}] | "
                  f"{r.exponent_stderr:.3f} | {r.n_values} |")
    md += ["", "| dataset | noise | sigma (V) | runs | converged (%) | max. accuracy (%) | paper: converged (%) | "
           "paper: max. accuracy (%) |", "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        err = f" +- {r.max_accuracy_error:.2f}" if np.isfinite(r.max_accuracy_error) else ""
        paper = (f"{r.paper_converged_percent:.0f} | {r.paper_max_accuracy_percent:.2f} +- "
                 f"{r.paper_max_accuracy_error:.2f}") if np.isfinite(r.paper_converged_percent) else "- | -"
        md.append(f"| {r.dataset} | {r.noise} | {r.sigma_V:.3g} | {r.runs} | {r.converged_percent:.0f} | "
                  f"{r.max_accuracy_percent:.2f}{err} (best {r.best_of}) | {paper} |")

    maps_dir = ROOT / "beta_lr_maps"
    if (maps_dir / "runs").is_dir() and any((maps_dir / "runs").glob("*.json")):
        maps = load_results(maps_dir)
        print(f"wrote {plot_beta_lr_maps(maps, ROOT / 'beta_lr_maps.png')}")
        m = maps[maps["status"] == "ok"]
        md += ["", "(beta, eta/beta) maps, test accuracy (%):", ""]
        for sigma, g in m.groupby("noise_sigma"):
            pivot = g.pivot_table(index="effective_learning_rate", columns="beta", values="test_accuracy")
            md += [f"sigma = {sigma:g} V", "", "| eta/beta \\ beta (S) | " + " | ".join(f"{b:g}" for b in pivot.columns)
                   + " |", "|---" * (len(pivot.columns) + 1) + "|"]
            for lr, row in pivot.iterrows():
                md.append(f"| {lr:g} | " + " | ".join(f"{100 * v:.1f}" for v in row.values) + " |")
            md.append("")

    pilot = ROOT / "pilot_inputs_measured"
    if (pilot / "runs").is_dir():
        p = load_results(pilot)
        p = p[(p["status"] == "ok") & (p["noise_sigma"] > 0)]
        both = p.merge(ok, on=["dataset", "noise_samples", "noise_sigma", "seed"], suffixes=("_inputs", "_exact"))
        if len(both):
            md += ["", "Inputs measured too (pilot) against inputs exact (grid), seed 0:", "",
                   "| dataset | N | sigma (V) | accuracy, inputs measured (%) | accuracy, inputs exact (%) |",
                   "|---|---|---|---|---|"]
            for r in both.sort_values(["dataset", "noise_samples", "noise_sigma"]).itertuples():
                md.append(f"| {r.dataset} | {r.noise_samples} | {r.noise_sigma:.3g} | "
                          f"{100 * r.test_accuracy_inputs:.2f} | {100 * r.test_accuracy_exact:.2f} |")
    _write(ROOT / "summary.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
