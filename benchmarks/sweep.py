"""Benchmark of nwb_dsr.sweep on Ray Tune: 2 recordings x 4 seeds x 2 tau values (16 trials).

The same sweep runs once per worker count (by default 1, then 2; Ray is started fresh each time
with as many CPUs as workers, one torch thread per trial). Printed: wall time per worker count,
the speed-up, the rows of the results table, and the checks of the written-back best fits
(pynwb validation, and reading them in a process without nwb_dsr).

Usage::

    .venv/bin/python benchmarks/sweep.py [--workers 1,2] [--epochs 100] [--keep DIR]

The last line printed is one JSON object with all figures.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def _readable_without_nwb_dsr(path: Path) -> bool:
    code = textwrap.dedent(f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "nwb_dsr" or name.startswith("nwb_dsr."):
                    raise ImportError(name)
        sys.meta_path.insert(0, _Block())
        from pynwb import NWBHDF5IO
        with NWBHDF5IO({str(path)!r}, "r", load_namespaces=True) as io:
            m = io.read().processing["dynamics"]["dsr"]
            assert type(m).__name__ == "DynamicalSystemModel"
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=path.parent)
    return proc.returncode == 0 and proc.stdout.strip().endswith("OK")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to time (default 1,2)")
    parser.add_argument("--epochs", type=int, default=100,
                        help="epochs of 20 batches per trial (default 100: about 5 s a trial)")
    parser.add_argument("--keep", default=None, help="folder to keep the outputs in")
    args = parser.parse_args(argv)

    import pynwb

    import nwb_dsr
    from nwb_dsr.datasets import write_lorenz_nwb

    folder = Path(args.keep or tempfile.mkdtemp(prefix="nwb_dsr_sweep_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    recs = [write_lorenz_nwb(folder / f"session{i}.nwb", n_units=30, duration=120.0,
                             n_lfp_channels=2, seed=i, overwrite=True) for i in (1, 2)]
    settings = {"tau": [5, 10], "epochs": args.epochs, "batches_per_epoch": 20,
                "batch_size": 32, "latent_dim": 3, "hidden_dim": 32, "eval_every": 5}
    print(f"recordings: {', '.join(r.name for r in recs)} (30 units, 120 s, 10-ms bins); "
          f"settings {settings}; seeds 0-3: 16 trials; {os.cpu_count()} cores")
    figures = {"cores": os.cpu_count(), "trials": 16, "settings": settings, "runs": {}}
    for n in [int(w) for w in args.workers.split(",")]:
        out = folder / f"workers{n}"
        t0 = time.perf_counter()
        res = nwb_dsr.sweep([str(r) for r in recs], sources={"units": {"bin_size": 0.01}},
                            settings=settings, seeds=4, out=out, num_cpus=n, workers=n,
                            lyapunov_steps=2000)
        wall = time.perf_counter() - t0
        df = res.table
        gates = {}
        for file, path in res.written.items():
            gates[Path(path).name] = {"pynwb_validate": pynwb.validate(path=str(path)) == [],
                                      "without_nwb_dsr": _readable_without_nwb_dsr(Path(path))}
        run = {"wall_s": wall, "rows": int(len(df)),
               "finished": int((df["status"] == "finished").sum()),
               "trial_seconds_sum": float(df["time_s"].sum()),
               "best": {Path(f).name: {"trial_id": t, "tau": int(df.set_index("trial_id")
                                                                  .loc[t, "tau"]),
                                       "seed": int(df.set_index("trial_id").loc[t, "seed"])}
                        for (f, _), t in res.best.items()},
               "nwb_gates": gates, "results_csv": str(res.csv)}
        figures["runs"][str(n)] = run
        print(f"{n} worker(s): {wall:.1f} s wall, {run['rows']} rows ({run['finished']} "
              f"finished), sum of trial times {run['trial_seconds_sum']:.1f} s; NWB gates: "
              + ", ".join(f"{k}: validate={v['pynwb_validate']}, without nwb_dsr="
                          f"{v['without_nwb_dsr']}" for k, v in gates.items()))
    runs = figures["runs"]
    if "1" in runs and "2" in runs:
        figures["speedup_2_vs_1"] = runs["1"]["wall_s"] / runs["2"]["wall_s"]
        print(f"speed-up with 2 workers: {figures['speedup_2_vs_1']:.2f}x")
    print(f"outputs in {folder}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
