"""Reconstruction quality against the forcing interval τ: the sparse-forcing paper's central result.

Mikhaeil, Monfared & Durstewitz (NeurIPS 2022) show that D_stsp and D_H are best for a forcing
interval τ near the predictability time τ_pred = ln 2 / λ_max, worse for much smaller τ (the
model never has to predict far enough to capture the long-term behaviour) and much worse for
much larger τ (exploding gradients return), and that gradient-clipped BPTT without forcing fails.
This script fits ``DSR(model=--model, latent_dim=--latent-dim)`` (Gaussian read-out) on
``../shared/data/benchmarks/lorenz63.npy`` (Lorenz-63, dt = 0.01, 100k steps) for every τ in
``--taus`` and for the clipped-BPTT baseline (``DSR(mode="bptt")``, gradient-norm clip 10),
``--seeds`` seeds each, with the same budget per run, and scores every fit as ../METRICS.md
prescribes: 100,000 freely generated steps started from the forced state at the first data
point after a discarded transient of 25,000 steps, compared with the data (the file has no test
split, so the training series is the reference), D_stsp (30 bins per dimension) and D_H (σ = 20).

Fairness: every run, whatever τ, uses windows of the same length (``--seq-len``, default 200
steps) and the same batch size, so each gradient step costs the same and the budget buys the same
number of updates. τ = 200 then forces only the first state of a 200-step window (no forcing
inside it, like the baseline but without gradient clipping) and τ = 1 forces every step (pure
teacher forcing). ``--max-time`` is a wall-clock budget per fit (validation included, as in
:class:`nwb_dsr.config.OptimizationConfig`); ``--epochs`` gives a compute budget instead (or in
addition: whichever ends first), which is the fairer choice on a shared, busy machine. Torch runs
on one thread and one fit runs at a time.

The model matters for the small-τ end. The paper's sweep used an LSTM whose hidden state is
larger than the data (M > N): forcing then sets only the observed part of the state and the
rest (the unobserved directions and the cell state) must be learned through the free-running
stretches between resets, which τ = 1 never asks for. With the default shallow PLRNN and
M = N = 3 on these noise-free data, every reset replaces the whole state, so τ = 1 is plain
one-step teacher forcing of a fully observed system, which can learn this smooth 3-d flow map
(it was the best τ of a 20-epoch sweep of that model).

The τ that ``choose_tau`` picks from the data (Rosenstein's λ_max, ``DSR(tau="auto")``) is
marked on the figure, together with the paper's predictability time of this series,
τ_pred = ln 2 · 66.7 ≈ 46 steps (``--tau-pred``; the paper gives 1/λ_max = 66.7 steps).

    python benchmarks/tau_sweep.py --model lstm --latent-dim 16 --epochs 25 --max-time 0 \
        --out /tmp/tau_sweep                                                  # the paper's sweep
    python benchmarks/tau_sweep.py --taus 10,46,200 --seeds 1 --max-time 20  # quick look

Writes ``results.json`` (every run; rewritten after each one, ``--resume`` continues from it), ``tau_sweep.png`` and
``summary.json`` into ``--out``; prints a table, and the summary as one JSON object on the last
line.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nwb_dsr import DSR, Observations  # noqa: E402
from nwb_dsr.analysis import evaluate, plot_tau_sweep  # noqa: E402
from nwb_dsr.policies import choose_tau  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "benchmarks" / "lorenz63.npy"
DEFAULT_TAUS = "1,5,10,20,30,46,70,100,200"
TAU_PRED_PAPER = math.log(2) * 66.7  # steps: the paper's 1/λ_max of lorenz63.npy is 66.7 steps


def _parse_list(text: str, name: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{name} must be a comma-separated list of integers; got {text!r}.")
    if not vals or min(vals) < 1:
        raise SystemExit(f"{name} must list integers >= 1; got {text!r}.")
    return vals


def _stats(values) -> dict:
    v = np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)
    ok = v[np.isfinite(v)]
    return {"mean": float(ok.mean()) if ok.size else None,
            "sd": float(ok.std()) if ok.size else None,
            "median": float(np.median(ok)) if ok.size else None,
            "n": int(ok.size), "values": [None if not math.isfinite(x) else float(x) for x in v]}


def fit_and_score(x, dt, *, tau, mode, seed, args) -> dict:
    est = DSR(model=args.model, tau=int(tau), mode=mode, seq_len=args.seq_len, batch_size=args.batch_size,
              lr=args.lr, epochs=args.epochs, max_time=args.max_time, seed=seed,
              latent_dim=args.latent_dim, hidden_dim=args.hidden_dim, progress=False)
    t0 = time.perf_counter()
    est.fit(x, bin_size=dt)
    fit_s = time.perf_counter() - t0
    res = evaluate(est, x, n_generate=args.n_generate, pe_steps=(1, 20), seed=seed)
    h = est.history_
    return {"tau": int(tau) if mode == "sparse" else None, "mode": mode, "seed": int(seed),
            "dstsp": res["dstsp"], "dh": res["dh"], "pe20": res["prediction_error"].get("20"),
            "lambda_max_per_s": res["lambda_max_per_s"], "epochs": int(h.epochs),
            "best_epoch": h.best_epoch, "stopped": h.stopped, "fit_seconds": round(fit_s, 1),
            "eval_seconds": round(time.perf_counter() - t0 - fit_s, 1)}


def summarize(runs, taus, tau_auto, tau_info, dt, args) -> dict:
    per_tau = {}
    for tau in taus:
        rs = [r for r in runs if r["mode"] == "sparse" and r["tau"] == tau]
        per_tau[str(tau)] = {"dstsp": _stats([r["dstsp"] for r in rs]),
                             "dh": _stats([r["dh"] for r in rs]),
                             "lambda_max_per_s": _stats([r["lambda_max_per_s"] for r in rs]),
                             "epochs": _stats([r["epochs"] for r in rs])}
    base = [r for r in runs if r["mode"] == "bptt"]
    baseline = {"dstsp": _stats([r["dstsp"] for r in base]), "dh": _stats([r["dh"] for r in base]),
                "epochs": _stats([r["epochs"] for r in base])} if base else None
    means = {t: per_tau[str(t)]["dstsp"]["mean"] for t in taus}
    scored = {t: m for t, m in means.items() if m is not None}
    best = min(scored, key=scored.get) if scored else None
    means_dh = {t: per_tau[str(t)]["dh"]["mean"] for t in taus}
    scored_dh = {t: m for t, m in means_dh.items() if m is not None}
    best_dh = min(scored_dh, key=scored_dh.get) if scored_dh else None
    return {"benchmark": "tau_sweep", "data": str(args.data), "dt": dt,
            "taus": taus, "seeds": list(range(args.seeds)), "seq_len": args.seq_len,
            "batch_size": args.batch_size, "max_time": args.max_time, "epochs": args.epochs,
            "lr": args.lr, "model": args.model, "latent_dim": args.latent_dim, "hidden_dim": args.hidden_dim,
            "n_generate": args.n_generate, "per_tau": per_tau,
            "baseline": baseline, "best_tau_dstsp": best, "best_tau_dh": best_dh,
            "tau_auto": tau_auto, "tau_auto_info": tau_info,
            "tau_pred": args.tau_pred,
            "n_runs": len(runs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="(T, N) .npy series")
    ap.add_argument("--dt", type=float, default=0.01, help="time step of the series")
    ap.add_argument("--taus", default=DEFAULT_TAUS, help="comma-separated forcing intervals")
    ap.add_argument("--tau-pred", type=float, default=TAU_PRED_PAPER,
                    help="predictability time in steps marked on the figure (default: the "
                         "paper's value for lorenz63.npy, ln 2 x 66.7 = 46.2)")
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (0..seeds-1)")
    ap.add_argument("--max-time", type=float, default=60.0, help="training budget per fit (s)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch budget per fit (50 batches each)")
    ap.add_argument("--seq-len", type=int, default=200, help="window length, the same for every run")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--model", default="shallow_plrnn",
                    help="latent model (DSR(model=...)); the paper's sweep used an LSTM")
    ap.add_argument("--latent-dim", type=int, default=None,
                    help="latent size M (default: the number of channels, 3)")
    ap.add_argument("--hidden-dim", type=int, default=64)
    ap.add_argument("--n-generate", type=int, default=100_000)
    ap.add_argument("--no-baseline", action="store_true", help="skip the clipped-BPTT baseline")
    ap.add_argument("--out", default="tau_sweep_out", help="output folder")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--resume", action="store_true",
                    help="keep the runs already in OUT/results.json and do only the missing ones")
    args = ap.parse_args(argv)
    if args.max_time is not None and args.max_time <= 0:
        args.max_time = None
    if args.max_time is None and args.epochs is None:
        raise SystemExit("give --max-time or --epochs.")
    torch.set_num_threads(args.threads)
    taus = _parse_list(args.taus, "--taus")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.data).is_file():
        raise SystemExit(f"data file not found: {args.data}")
    x = np.load(args.data).astype(np.float64)
    dt = float(args.dt)

    tau_auto, tau_info = choose_tau(Observations(x, bin_size=dt))
    print(f"choose_tau: tau = {tau_auto} (lambda_max = {tau_info['lambda_max_per_s']:.3f} per "
          f"time unit; tau_pred = {args.tau_pred:.1f})", flush=True)

    configs = [("sparse", t) for t in taus] + ([] if args.no_baseline else [("bptt", None)])
    runs = []
    if args.resume and (out / "results.json").is_file():
        runs = json.loads((out / "results.json").read_text())
        print(f"resuming: {len(runs)} runs already done", flush=True)
    done = {(r["mode"], r["tau"], r["seed"]) for r in runs}
    t_all = time.perf_counter()
    for seed in range(args.seeds):
        for mode, tau in configs:
            if (mode, tau, seed) in done:
                continue
            r = fit_and_score(x, dt, tau=tau or 20, mode=mode, seed=seed, args=args)
            runs.append(r)
            label = f"tau={tau}" if mode == "sparse" else "baseline"
            print(f"[{time.perf_counter() - t_all:7.0f} s] seed {seed} {label:9s} "
                  f"D_stsp={r['dstsp'] if r['dstsp'] is None else round(r['dstsp'], 3)} "
                  f"D_H={r['dh'] if r['dh'] is None else round(r['dh'], 3)} "
                  f"lambda_max={r['lambda_max_per_s']} epochs={r['epochs']} ({r['stopped']})",
                  flush=True)
            (out / "results.json").write_text(json.dumps(runs, indent=1))

    runs = [r for r in runs if r["seed"] < args.seeds and (r["mode"] == "bptt" or r["tau"] in taus)]
    summary = summarize(runs, taus, tau_auto, tau_info, dt, args)
    base = summary["baseline"]
    fig_path = out / "tau_sweep.png"
    plot_tau_sweep(taus,
                   [summary["per_tau"][str(t)]["dstsp"]["values"] for t in taus],
                   [summary["per_tau"][str(t)]["dh"]["values"] for t in taus],
                   tau_auto=tau_auto, tau_pred=summary["tau_pred"],
                   baseline=None if base is None else {"dstsp": base["dstsp"]["values"],
                                                       "dh": base["dh"]["values"]},
                   path=fig_path)
    summary["figure"] = str(fig_path)
    summary["total_seconds"] = round(time.perf_counter() - t_all, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    def fmt(s):
        return "   nan" if s["mean"] is None else f"{s['mean']:.3f} ± {s['sd']:.3f}"

    def seeds(s):
        return " ".join("nan" if v is None else f"{v:.2f}" for v in s["values"])
    print(f"\n{'tau':>8s}  {'D_stsp mean ± sd':>16s}  {'D_H mean ± sd':>15s}  D_stsp per seed")
    for t in taus:
        p = summary["per_tau"][str(t)]
        print(f"{t:>8d}  {fmt(p['dstsp']):>16s}  {fmt(p['dh']):>15s}  {seeds(p['dstsp'])}")
    if base is not None:
        print(f"{'baseline':>8s}  {fmt(base['dstsp']):>16s}  {fmt(base['dh']):>15s}  "
              f"{seeds(base['dstsp'])}")
    print(f"best tau (D_stsp): {summary['best_tau_dstsp']}, (D_H): {summary['best_tau_dh']}; "
          f"choose_tau: {tau_auto}; figure: {fig_path}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
