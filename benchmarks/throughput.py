"""Training and generation throughput: sequence-steps per second on this machine.

For each latent model at its default sizes (the defaults ``DSR()`` resolves for a 3-channel
continuous series: latent size 6, hidden width of the shallow PLRNNs 128) with the
Gaussian layer and sparse forcing (τ = 20), and for the Poisson path (60 units, the counts'
defaults: Poisson layer, learned forcing states, latent size 3, τ = 20), it reports

* ``train_steps_per_s``: latent steps of training windows per second of the training loop
  (batch size × window length × gradient steps / seconds; the loop's own sampling, loss,
  backward pass and optimiser step included, validation excluded);
* ``validation_s``: seconds of one validation (the evaluation protocol's free run of
  ``n_val_steps`` steps and its metrics against 10,000 bins);
* ``generate_steps_per_s``: free-running steps per second of one trajectory
  (:func:`nwb_dsr.models.rollout.free_run`, what validation, ``generate`` and the benchmarks run).

Everything runs on one torch thread unless ``--threads`` says otherwise; on a shared machine
run it when the machine is quiet or compare figures measured side by side.

    python benchmarks/throughput.py
    python benchmarks/throughput.py --models shallow_plrnn --seconds 5

The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from nwb_dsr import Observations  # noqa: E402
from nwb_dsr.config import DSRConfig, LATENT_MODEL_NAMES  # noqa: E402
from nwb_dsr.datasets import make_lorenz_population  # noqa: E402
from nwb_dsr.datasets.systems import lorenz63  # noqa: E402
from nwb_dsr.estimator import DSR  # noqa: E402
from nwb_dsr.models.rollout import free_run  # noqa: E402
from nwb_dsr.policies import resolve  # noqa: E402
from nwb_dsr.training.forcing import make_forcing  # noqa: E402
from nwb_dsr.training.trainer import Trainer  # noqa: E402


def _trainer(obs: Observations, settings: dict, device: str):
    resolved = resolve(DSRConfig.from_params(**settings), obs)
    latent, readout = DSR._build(resolved)
    readout.fit_init(obs.concatenated())
    f = resolved.forcing
    scheme = make_forcing(f.mode, tau=f.tau, alpha=f.alpha, window=f.seq_len,
                          continuity=f.continuity)
    opt = resolved.optimization
    return resolved, Trainer(latent, readout, scheme, opt, resolved.evaluation, resolved.run)


def measure(obs: Observations, settings: dict, seconds: float, device: str = "cpu") -> dict:
    """Throughput of training, validation and generation for one configuration.

    Parameters
    ----------
    obs : Observations
        Training data.
    settings : dict
        ``DSR`` settings (flat names); the budget is set here.
    seconds : float
        About how long the training measurement runs.
    device : str
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    dict
        ``train_steps_per_s``, ``validation_s``, ``generate_steps_per_s`` and the sizes used.
    """
    base = dict(settings, device=device, progress=False, validation_fraction=0.0)
    # warm-up (allocators, lazy initialisation) with the same shapes
    _, tr = _trainer(obs, dict(base, epochs=1, batches_per_epoch=3), device)
    tr.fit(obs)
    # one epoch of 10 steps to size the measurement, then the measurement: the time from the
    # end of the first epoch to the end of the last (set-up and first epoch excluded)
    marks = []

    def mark(trainer, epoch, seconds):
        marks.append(time.perf_counter())

    _, tr = _trainer(obs, dict(base, epochs=2, batches_per_epoch=10), device)
    tr.fit(obs, callback=mark)
    per_batch = max(marks[-1] - marks[-2], 1e-4) / 10
    n_batches = max(10, int(round(seconds / per_batch / 10)))
    marks.clear()
    resolved, tr = _trainer(obs, dict(base, epochs=11, batches_per_epoch=n_batches), device)
    tr.fit(obs, callback=mark)
    opt = resolved.optimization
    train_s = marks[-1] - marks[0]
    n_steps = opt.batch_size * resolved.forcing.seq_len * opt.batches_per_epoch * 10
    # one validation against 10,000 held-back bins (a 100k-bin series with the default
    # validation_fraction), as the trainer runs it
    segs = [s[-10_000:] for s in obs.data]
    t0 = time.perf_counter()
    tr.validate(segs)
    val_s = time.perf_counter() - t0
    # free-running generation of one trajectory
    n_gen = 20_000
    z0 = torch.zeros(1, tr.latent.state_dim, device=tr.device)
    free_run(tr.latent, z0, 100)
    t0 = time.perf_counter()
    free_run(tr.latent, z0, n_gen)
    gen_s = time.perf_counter() - t0
    return {"train_steps_per_s": round(n_steps / train_s), "validation_s": round(val_s, 3),
            "generate_steps_per_s": round(n_gen / gen_s),
            "batch_size": opt.batch_size, "window": resolved.forcing.seq_len,
            "batches": 10 * opt.batches_per_epoch, "train_s": round(train_s, 2),
            "mode": resolved.forcing.mode, "latent_dim": resolved.model.latent_dim,
            "hidden_dim": resolved.model.hidden_dim}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(LATENT_MODEL_NAMES),
                    help="comma-separated latent models (default: all)")
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="about how long each training measurement runs")
    ap.add_argument("--no-poisson", action="store_true", help="skip the Poisson path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    x = lorenz63(20_000, dt=0.01, seed=0)
    cont = Observations(x, bin_size=0.01)
    rows = {}
    for name in [m for m in args.models.split(",") if m]:
        rows[name] = measure(cont, {"model": name, "tau": 20}, args.seconds, args.device)
        print(f"{name:24s} {json.dumps(rows[name])}", file=sys.stderr, flush=True)
    if not args.no_poisson:
        pop = make_lorenz_population(n_units=60, duration=200.0, n_lfp_channels=0,
                                     spike_times=False, seed=0)
        counts = Observations(pop.counts, kind="counts", bin_size=pop.bin_size)
        rows["poisson_60_units"] = measure(counts, {"tau": 20}, args.seconds, args.device)
        print(f"{'poisson_60_units':24s} {json.dumps(rows['poisson_60_units'])}",
              file=sys.stderr, flush=True)
    print(f"{'model':24s} {'train steps/s':>14s} {'validation s':>13s} {'generate steps/s':>17s}",
          file=sys.stderr)
    for k, r in rows.items():
        print(f"{k:24s} {r['train_steps_per_s']:14d} {r['validation_s']:13.3f} "
              f"{r['generate_steps_per_s']:17d}", file=sys.stderr)
    print(json.dumps({"device": args.device, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
