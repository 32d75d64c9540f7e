"""Table I of the uncertainty paper from a noise sweep: per dataset, the share of converged runs and the
best accuracy at zero noise, at the noise level with the highest mean accuracy ("optimal noise") and at the
non-zero noise level with the most converged runs (ties: the higher mean accuracy).

Run:  .venv/bin/python experiments/table1.py experiments/results/noise
Writes table1.csv and table1.md in that folder.
"""
import sys
from pathlib import Path

from circuitprop.io.files import atomic_write_bytes
from circuitprop.studies.sweep import converged, load_results


def main(results):
    import pandas as pd
    df = load_results(results)
    df = df[df["noise_samples"] == 1].assign(converged=lambda d: converged(d))
    rows = []
    for dataset, g in df.groupby("dataset"):
        by_sigma = g.groupby("noise_sigma")
        mean = by_sigma["test_accuracy"].mean()
        best_sigma = float(mean.idxmax())
        share = by_sigma["converged"].mean()
        noisy = pd.DataFrame({"share": share, "mean": mean}).drop(index=0.0, errors="ignore")
        most_converged = float(noisy.sort_values(["share", "mean"], ascending=False).index[0])
        for label, sigma in (("zero noise", 0.0), ("optimal noise (best mean accuracy)", best_sigma),
                             ("noise with most converged runs", most_converged)):
            cell = g[g["noise_sigma"] == sigma]
            rows.append({"dataset": dataset, "noise": label, "sigma_V": sigma, "seeds": len(cell),
                         "converged_percent": 100 * cell["converged"].mean(),
                         "mean_accuracy_percent": 100 * cell["test_accuracy"].mean(),
                         "best_accuracy_percent": 100 * cell["test_accuracy"].max()})
    table = pd.DataFrame(rows)
    out = Path(results)
    atomic_write_bytes(out / "table1.csv", table.to_csv(index=False).encode())
    md = ["| dataset | noise | sigma (V) | seeds | converged (%) | mean acc. (%) | best acc. (%) |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r.dataset} | {r.noise} | {r.sigma_V:g} | {r.seeds} | {r.converged_percent:.0f} | "
           f"{r.mean_accuracy_percent:.2f} | {r.best_accuracy_percent:.2f} |" for r in table.itertuples()]
    atomic_write_bytes(out / "table1.md", ("\n".join(md) + "\n").encode())
    print("\n".join(md))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/results/noise")
