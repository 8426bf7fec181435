"""Reconstruct a benchmark dynamical system and score the reconstruction.

Fits the default model (or the named one) to a (T, N) array and evaluates it on TEST (TRAIN if
none) with the evaluation protocol (nwb_dsr.protocol, as ../shared/METRICS.md prescribes):
100,000 freely generated steps started from the forced state at the first test point, after a
discarded transient of 25,000 steps; D_stsp and D_H against the test series.

    python benchmarks/reconstruct.py --train ../shared/data/benchmarks/lorenz63_train.npy \
        --test ../shared/data/benchmarks/lorenz63_test.npy --max-time 300

``--baseline`` trains without forcing (initial state only, BPTT over 200-step windows,
gradient-norm clipping). With ``--target-dstsp/--target-dh`` the model is evaluated every
``--eval-every`` epochs (that time is excluded from the training time) and the training time at
which both targets are first met is reported, as wall-clock seconds and as the process's CPU
seconds (on a shared machine the two differ by the time other processes held the cores).
Settings not given keep ``DSR``'s defaults, except ``--tau`` (20 bins unless given). The last
printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nwb_dsr import DSR  # noqa: E402
from nwb_dsr.protocol import EvaluationProtocol  # noqa: E402

N_GEN = 100_000


def score(est: DSR, test: np.ndarray, latent=None, readout=None, n_gen: int = N_GEN):
    """The evaluation protocol with ``n_gen`` generated steps (transient n_gen/4) against TEST.

    ``latent``/``readout`` score a model that is still training (default: the fitted one).
    """
    protocol = EvaluationProtocol(n_steps=n_gen, seed=est.seed)
    res = protocol.evaluate(latent or est.latent_model_, readout or est.observation_model_,
                            [test])
    return res.dstsp, res.dh, res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="(T, N) .npy training series")
    ap.add_argument("--test", help="(T, N) .npy test series (default: the training series)")
    ap.add_argument("--model", default="shallow_plrnn")
    ap.add_argument("--latent-dim", type=int, default=None)
    ap.add_argument("--hidden-dim", type=int, default=None)
    ap.add_argument("--tau", default="20", help="forcing interval in steps, or 'auto'")
    ap.add_argument("--baseline", action="store_true", help="no forcing: clipped BPTT over 200-step windows")
    ap.add_argument("--max-time", type=float, default=120.0,
                    help="training budget in seconds; 0 for none (the epoch budget only)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--target-dstsp", type=float, default=None)
    ap.add_argument("--target-dh", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=10, help="epochs between target checks")
    ap.add_argument("--save-generated", default=None, help="write the generated series here (.npy)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--n-gen", type=int, default=N_GEN, help="generated steps scored")
    ap.add_argument("--dsr", default="{}", help="JSON dict of further DSR(...) settings "
                    "(experiments)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    train = np.load(args.train).astype(np.float64)
    test = np.load(args.test).astype(np.float64) if args.test else train
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        print(f"error: --train and --test must be (T, N) arrays with the same N; got {train.shape} "
              f"and {test.shape}", file=sys.stderr)
        return 2
    settings = dict(model=args.model, mode="bptt" if args.baseline else "sparse",
                    max_time=args.max_time or None, seed=args.seed, device=args.device,
                    progress=False)
    # settings not given on the command line keep DSR's defaults
    if args.tau is not None:
        settings["tau"] = args.tau if args.tau == "auto" else int(args.tau)
    for name in ("latent_dim", "hidden_dim", "epochs"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    est = DSR(**{**settings, **json.loads(args.dsr)})

    reached = {"seconds": None, "epoch": None, "cpu_seconds": None}
    targets = args.target_dstsp is not None and args.target_dh is not None
    # process CPU time as well as wall time: on a shared machine the wall clock also counts
    # the time other processes hold the cores
    cpu = {"start": time.process_time(), "monitor": 0.0}

    def monitor(trainer, epoch, seconds):
        if reached["seconds"] is not None or epoch % args.eval_every:
            return
        c0 = time.process_time()
        cpu_so_far = c0 - cpu["start"] - cpu["monitor"]
        with torch.no_grad():
            was_training = trainer.latent.training
            ds, dh, _ = score(est, test, trainer.latent, trainer.readout, args.n_gen)
            trainer.latent.train(was_training)
        print(f"  epoch {epoch:5d}  {seconds:7.1f} s  (cpu {cpu_so_far:7.1f} s)  D_stsp {ds:.3f}  "
              f"D_H {dh:.3f}", file=sys.stderr)
        if ds <= args.target_dstsp and dh <= args.target_dh:
            reached.update(seconds=round(seconds, 2), epoch=epoch,
                           cpu_seconds=round(cpu_so_far, 2))
        cpu["monitor"] += time.process_time() - c0

    t0 = time.perf_counter()
    cpu["start"] = time.process_time()
    est.fit(train, bin_size=1.0, callback=monitor if targets else None)
    wall = time.perf_counter() - t0
    cpu_fit = time.process_time() - cpu["start"] - cpu["monitor"]
    ds, dh, res = score(est, test, n_gen=args.n_gen)
    if args.save_generated:
        np.save(args.save_generated, res.generated)
    h = est.history_
    print(f"model {args.model}  tau {est.tau_}  epochs {h.epochs}  best epoch {h.best_epoch}  "
          f"stopped: {h.stopped}  train {h.seconds:.1f} s (wall {wall:.1f} s)", file=sys.stderr)
    out = {"D_stsp": round(ds, 4), "D_H": round(dh, 4), "train_seconds": round(h.seconds, 2),
           "train_cpu_seconds": round(cpu_fit, 2),
           "epochs": h.epochs, "seconds_to_target": reached["seconds"] if targets else None,
           "cpu_seconds_to_target": reached["cpu_seconds"] if targets else None,
           "model": args.model, "tau": est.tau_, "mode": est.resolved_config_.forcing.mode,
           "seed": args.seed}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
