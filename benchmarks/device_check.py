"""GPU check: the reconstruct and spike benchmarks fitted on CUDA and on the CPU, compared.

One call on a machine with one NVIDIA GPU runs, in about five minutes in all:

1. **Throughput** (``benchmarks/throughput.py``'s measurement) of the default shallow PLRNN on
   a 3-d continuous series and of the Poisson path at 60 units, on the CPU (one thread) and on
   the device: training and free-running sequence-steps per second.
2. **Reconstruction** (``benchmarks/reconstruct.py``): the defaults fitted to
   ../shared/data/benchmarks/lorenz63.npy for a fixed epoch budget (so the same seed does the
   same work on both devices), D_stsp and D_H from 100,000 generated steps.
3. **Spikes** (``benchmarks/spikes_vs_gpfa.py --skip-gpfa``): the defaults fitted to the
   Lorenz-driven population of 60 units for a fixed epoch budget; λ_max and co-bps.

The device fit passes when its figures are within the noise of the CPU fit with the same seed:
float32 sums are not associative, so a chaotic fit on another device follows another path, and
"within noise" means within the spread across seeds on one device (README "Benchmarks" and
``benchmarks/RESULTS.md``): D_stsp at most ``--tol-dstsp`` higher, D_H at most ``--tol-dh``
higher, λ_max within ``--tol-lambda`` /s and co-bps at most ``--tol-bps`` lower. The process
exits with status 1 when a check fails and 2 when the device is not available.

    python benchmarks/device_check.py                         # CUDA against CPU, ~5 min
    python benchmarks/device_check.py --device cpu --quick    # the fallback, in seconds

``--device cpu`` compares the CPU with itself (a test of the script: both fits must agree
exactly, same seed and budget); ``--quick`` shortens data and budgets to seconds (one member,
short validation runs). The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import reconstruct  # noqa: E402
import spikes_vs_gpfa  # noqa: E402
import throughput  # noqa: E402

from nwb_dsr import Observations  # noqa: E402
from nwb_dsr.datasets import make_lorenz_population  # noqa: E402

DATA = HERE.parents[1] / "shared" / "data" / "benchmarks"


def _json_of(main, argv) -> dict:
    """Run a benchmark's ``main(argv)`` and return its last printed line (one JSON object)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    if rc:
        raise RuntimeError(f"{main.__module__} {argv} failed ({rc}): {err.getvalue()[-2000:]}")
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _throughput(device: str, seconds: float, n_bins: int) -> dict:
    from nwb_dsr.datasets.systems import lorenz63
    x = lorenz63(n_bins, dt=0.01, seed=0)
    cont = Observations(x, bin_size=0.01)
    pop = make_lorenz_population(n_units=60, duration=n_bins * 0.01, n_lfp_channels=0,
                                 spike_times=False, seed=0)
    counts = Observations(pop.counts, kind="counts", bin_size=pop.bin_size)
    return {"shallow_plrnn": throughput.measure(cont, {"tau": 20}, seconds, device),
            "poisson_60_units": throughput.measure(counts, {"tau": 20}, seconds, device)}


def _reconstruct(device: str, args) -> dict:
    argv = ["--train", str(args.lorenz), "--seed", str(args.seed), "--device", device,
            "--max-time", "0", "--epochs", str(args.epochs)]
    if args.quick:   # one member, short validation runs: the fallback in seconds
        argv += ["--n-gen", "5000", "--dsr", json.dumps({"restarts": 0, "n_val_steps": 2000,
                                                      "n_final_steps": 5000})]
    t0 = time.perf_counter()
    res = _json_of(reconstruct.main, argv)
    res["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return res


def _spikes(device: str, args) -> dict:
    dsr, quick = {"device": device, "epochs": args.spike_epochs}, []
    if args.quick:   # one member on a minute of data
        dsr["ensemble"], quick = 1, ["--duration", "60"]
    argv = ["--max-time", "0", "--skip-gpfa", "--seed", str(args.seed),
            "--dsr", json.dumps(dsr)] + quick
    t0 = time.perf_counter()
    res = _json_of(spikes_vs_gpfa.main, argv)
    res["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return res


def compare(cpu: dict, dev: dict, tol: dict) -> dict:
    """The quality checks of a device fit against the CPU fit: {name: (ok, cpu, device)}.

    Examples
    --------
    >>> tol = {"dstsp": 0.3, "dh": 0.05, "lambda": 0.25, "bps": 0.05}
    >>> rec = {"D_stsp": 0.2, "D_H": 0.07}
    >>> spk = {"lambda_max_ours": 0.9, "co_bps_ours": 0.3}
    >>> c = compare({"reconstruct": rec, "spikes": spk},
    ...             {"reconstruct": {"D_stsp": 0.6, "D_H": 0.08}, "spikes": spk}, tol)
    >>> c["reconstruct_D_stsp"][0], c["reconstruct_D_H"][0], c["spikes_co_bps"][0]
    (False, True, True)
    """
    r0, r1, s0, s1 = cpu["reconstruct"], dev["reconstruct"], cpu["spikes"], dev["spikes"]
    return {
        "reconstruct_D_stsp": (_le(r1["D_stsp"], r0["D_stsp"] + tol["dstsp"]),
                               r0["D_stsp"], r1["D_stsp"]),
        "reconstruct_D_H": (_le(r1["D_H"], r0["D_H"] + tol["dh"]), r0["D_H"], r1["D_H"]),
        "spikes_lambda_max": (_le(abs(_num(s1["lambda_max_ours"]) - _num(s0["lambda_max_ours"])),
                                  tol["lambda"]), s0["lambda_max_ours"], s1["lambda_max_ours"]),
        "spikes_co_bps": (_le(_num(s0["co_bps_ours"]) - tol["bps"], s1["co_bps_ours"]),
                          s0["co_bps_ours"], s1["co_bps_ours"]),
    }


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _le(a, b) -> bool:
    a, b = _num(a), _num(b)
    return bool(np.isfinite(a) and np.isfinite(b) and a <= b)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="device to check against the CPU")
    ap.add_argument("--quick", action="store_true",
                    help="short data and budgets (seconds): a test of the script")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lorenz", default=str(DATA / "lorenz63.npy"),
                    help="series of the reconstruction check")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epoch budget of the reconstruction fits (default 60, quick 2)")
    ap.add_argument("--spike-epochs", type=int, default=None,
                    help="epoch budget of the spike fits (default 60, quick 2)")
    ap.add_argument("--tol-dstsp", type=float, default=0.3)
    ap.add_argument("--tol-dh", type=float, default=0.05)
    ap.add_argument("--tol-lambda", type=float, default=0.25, help="1/s")
    ap.add_argument("--tol-bps", type=float, default=0.05)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    if args.epochs is None:
        args.epochs = 2 if args.quick else 60
    if args.spike_epochs is None:
        args.spike_epochs = 2 if args.quick else 60
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {dev} but CUDA is not available here (torch "
              f"{torch.__version__}); use --device cpu to check the CPU fallback.",
              file=sys.stderr)
        print(json.dumps({"device": dev, "available": False, "passed": False}))
        return 2
    if args.quick and args.lorenz == str(DATA / "lorenz63.npy"):
        from nwb_dsr.datasets.systems import lorenz63
        import tempfile
        tmp = Path(tempfile.mkdtemp()) / "lorenz_short.npy"
        np.save(tmp, lorenz63(6000, dt=0.01, seed=0))
        args.lorenz = str(tmp)
    if not Path(args.lorenz).exists():
        print(f"error: no series at {args.lorenz}; pass --lorenz PATH.", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "cpu"

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    secs, n_bins = (0.3, 4000) if args.quick else (3.0, 20_000)
    results = {}
    for key, where in (("cpu", "cpu"), ("device", dev)):
        t0 = time.perf_counter()
        tp = _throughput(where, secs, n_bins)
        rec = _reconstruct(where, args)
        spk = _spikes(where, args)
        results[key] = {"throughput": tp, "reconstruct": rec, "spikes": spk,
                        "seconds": round(time.perf_counter() - t0, 1)}
        log(f"{where}: {results[key]['seconds']} s; reconstruct D_stsp {rec['D_stsp']} "
            f"D_H {rec['D_H']}; spikes lambda {spk['lambda_max_ours']} co-bps "
            f"{spk['co_bps_ours']}")
    tol = {"dstsp": args.tol_dstsp, "dh": args.tol_dh, "lambda": args.tol_lambda,
           "bps": args.tol_bps}
    checks = compare(results["cpu"], results["device"], tol)
    if dev == "cpu":  # the same device twice: same seed and budget must give the same fits
        checks["cpu_repeats_exactly"] = (
            results["cpu"]["reconstruct"]["D_stsp"] == results["device"]["reconstruct"]["D_stsp"]
            and results["cpu"]["spikes"]["co_bps_ours"]
            == results["device"]["spikes"]["co_bps_ours"], None, None)
    log(f"{'throughput (steps/s)':34s} {'cpu':>12s} {dev:>12s}")
    for model in ("shallow_plrnn", "poisson_60_units"):
        for what in ("train_steps_per_s", "generate_steps_per_s"):
            a = results["cpu"]["throughput"][model][what]
            b = results["device"]["throughput"][model][what]
            log(f"{model + ' ' + what[:-12]:34s} {a:12d} {b:12d}")
    log(f"{'check':24s} {'ok':>5s} {'cpu':>10s} {dev:>10s}")
    for k, (ok, a, b) in checks.items():
        log(f"{k:24s} {str(ok):>5s} {str(a):>10s} {str(b):>10s}")
    passed = all(ok for ok, _, _ in checks.values())
    total = time.perf_counter() - t_start
    log(f"{'PASSED' if passed else 'FAILED'} in {total:.0f} s on {name}")
    print(json.dumps({"device": dev, "device_name": name, "available": True, "quick": args.quick,
                      "passed": passed, "seconds": round(total, 1),
                      "checks": {k: {"ok": ok, "cpu": a, "device": b}
                                 for k, (ok, a, b) in checks.items()},
                      "tolerances": tol, "results": results}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
