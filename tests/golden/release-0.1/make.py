"""Write checkpoint/model files with the 0.1 release (before the renovation) and what resuming them gives."""
import numpy as np
from circuitprop.learning import EPTrainer
out = "tests/golden/release-0.1"
rng = np.random.default_rng(7)
X = rng.uniform(0, 1, (48, 16)); y = rng.integers(0, 3, 48)
Xt = rng.uniform(0, 1, (12, 16))
cases = {
  "default": dict(layers="16-6-3", epochs=2, batch_size=4, verbose=False, learning_rate=3e4),
  "noisy": dict(layers="16-6-3", epochs=2, batch_size=4, verbose=False, estimator="random-sign",
                noise_sigma=1e-4, noise_samples=2, learning_rate=[2e4, 1e4], diode="1n4148", input_gain=30.0,
                target=1.0, g_max=1e-5, solver_sweeps=6, seed=3),
}
for name, params in cases.items():
    ck = f"{out}/{name}.ckpt.npz"
    t = EPTrainer(**params)
    t.fit(X, y, checkpoint=ck, stop_after_batches=17)   # mid epoch 2
    t.network_.save(f"{out}/{name}.model.npz")
    t2 = EPTrainer.from_checkpoint(ck, verbose=False)
    t2.fit(X, y, checkpoint=f"/tmp/{name}.resumed.ckpt.npz", resume=False) if False else None
    import shutil; shutil.copy(ck, f"/tmp/{name}.copy.ckpt.npz")
    t3 = EPTrainer(**params).fit(X, y, checkpoint=f"/tmp/{name}.copy.ckpt.npz", resume=True)
    arrays = {f"g_{a}_{b}": g for (a, b), g in t3.network_.conductances.items()}
    np.savez(f"{out}/{name}.expected.npz", X=X, y=y, Xt=Xt, scores_at_checkpoint=t2.decision_function(Xt),
             final_scores=t3.decision_function(Xt), **arrays)
    print(name, t3.history_)
