"""Poisson versus Gaussian observation layer on Lorenz-driven spike counts.

Fits the default DSR model twice to ../shared/data/benchmarks/lorenz_poisson_counts_train.npy
(3 channels of Poisson counts, mean ≈ 1 per bin, dt 0.05): once with the Poisson layer (the
default for counts) and once with a Gaussian layer on the same counts. Each model generates
100,000 steps of expected counts from the forced state at the first test point (25,000 further
transient steps discarded); D_H is taken against the test counts, and D_stsp against the test
counts smoothed with the Poisson layer's kernel (raw counts are integers, so their occupation
measure is a lattice).

    python benchmarks/poisson_vs_gaussian.py --max-time 120

The script also reports how much the counts say about the latent state: the lag-1
autocorrelation of each channel and the R² of a linear regression of the smoothed counts on
the Gaussian observations of the same Lorenz trajectory (lorenz_gaussian_train.npy). When both
are small the counts are close to white Poisson noise, and any model's best short-horizon
prediction is the mean rate. The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.ndimage import gaussian_filter1d  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconstruct import generate_from_test  # noqa: E402

from nwb_dsr import DSR, Observations  # noqa: E402
from nwb_dsr.metrics import power_spectrum_distance, state_space_divergence  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"


def signal_diagnostics(counts: np.ndarray, reference_path: str, smoothing: float = 2.0) -> dict:
    """Lag-1 autocorrelation of the counts and R² of smoothed counts on reference observations."""
    c = counts.astype(np.float64)
    a = c - c.mean(0)
    acf1 = (a[:-1] * a[1:]).sum(0) / (a * a).sum(0)
    out = {"lag1_autocorrelation": [round(float(v), 4) for v in acf1]}
    if Path(reference_path).exists():
        g = np.load(reference_path).astype(np.float64)[:len(c)]
        y = gaussian_filter1d(c[:len(g)], smoothing, axis=0)
        X = np.c_[g, np.ones(len(g))]
        coef = np.linalg.lstsq(X, y, rcond=None)[0]
        r2 = 1 - ((y - X @ coef) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
        out["r2_smoothed_counts_on_gaussian_obs"] = [round(float(v), 4) for v in r2]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default=str(DATA / "lorenz_poisson_counts_train.npy"))
    ap.add_argument("--test", default=str(DATA / "lorenz_poisson_counts_test.npy"))
    ap.add_argument("--bin-size", type=float, default=0.05)
    ap.add_argument("--max-time", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gaussian-reference", default=str(DATA / "lorenz_gaussian_train.npy"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train, test = np.load(args.train), np.load(args.test)
    obs = Observations(train, kind="counts", bin_size=args.bin_size)
    out = {"signal": signal_diagnostics(train, args.gaussian_reference)}
    print(f"signal   {out['signal']}", file=sys.stderr)
    for layer in ("poisson", "gaussian"):
        est = DSR(observation=layer, latent_dim=3, max_time=args.max_time, epochs=None,
                  seed=args.seed, progress=False).fit(obs)
        sm = est.smoothing
        gen = generate_from_test(est, test[:50])
        if layer == "poisson":
            gen_ = gen
        else:
            gen_ = np.clip(gen, 0, None)  # expected counts cannot be negative
        smooth_test = gaussian_filter1d(test.astype(np.float64), sm, axis=0)
        T = min(len(test), len(gen_))
        out[layer] = {
            "D_H": round(power_spectrum_distance(test[:T], gen_[:T]), 4),
            "D_stsp_smoothed": round(state_space_divergence(smooth_test, gen_), 4),
            "finite_loss": bool(np.all(np.isfinite(est.history_.loss))),
            "generated_std": [round(float(v), 4) for v in gen_.std(0)],
            "epochs": est.history_.epochs, "train_seconds": round(est.history_.seconds, 1),
        }
        print(f"{layer:8s} {out[layer]}", file=sys.stderr)
    out["poisson_lower_D_H"] = out["poisson"]["D_H"] < out["gaussian"]["D_H"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
