"""Benchmark of the NWB readers (prints figures; not a timed test).

1. read_units: 500 units x 1 hour at ~10 Hz (~18M spikes) written to an NWB file, binned into
   10 ms bins, on one core. Target <= 10 s.
2. read_lfp: an int16 ElectricalSeries, 384 channels x 10 minutes at 2.5 kHz (1.15 GB), chunked
   in HDF5 (H5DataIO), decimated to 250 Hz (``preprocess=False``: reading and decimation only,
   without the field-potential defaults of band, notch and principal components). Peak RSS of
   a subprocess doing only the read (target <= 512 MiB) and throughput against a plain chunked
   h5py read of the same dataset (target >= 90 % for gzip). Run for two storage layouts: gzip
   (level 4, how NWB LFP is usually stored, e.g. the shared nwbguide file) and uncompressed.

Usage::

    .venv/bin/python benchmarks/readers.py [--minutes 10] [--hours 1] [--keep DIR]

The last line printed is one JSON object with all figures.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

N_UNITS, RATE_HZ, BIN = 500, 10.0, 0.01
N_CH, FS, FS_OUT = 384, 2500.0, 250.0


def _nwbfile():
    from pynwb import NWBFile

    return NWBFile(session_description="nwb_dsr reader benchmark", identifier="bench",
                   session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))


def write_units(path: Path, hours: float, seed: int = 0) -> int:
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import VectorData, VectorIndex
    from pynwb import NWBHDF5IO
    from pynwb.misc import Units

    rng = np.random.default_rng(seed)
    dur = 3600.0 * hours
    rates = rng.uniform(0.2, 1.8, N_UNITS) * RATE_HZ
    counts = rng.poisson(rates * dur)
    flat = np.empty(int(counts.sum()))
    pos = 0
    for c in counts:
        flat[pos:pos + c] = np.sort(rng.uniform(0.0, dur, c))
        pos += c
    st = VectorData(name="spike_times", description="spike times (s)",
                    data=H5DataIO(flat, chunks=(1 << 20,)))
    idx = VectorIndex(name="spike_times_index", data=np.cumsum(counts), target=st)
    units = Units(name="units", id=list(range(N_UNITS)), columns=[st, idx],
                  description="synthetic Poisson units")
    nwb = _nwbfile()
    nwb.units = units
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return int(flat.size)


def bench_units(tmp: Path, hours: float, reuse: bool = False) -> dict:
    import h5py

    from nwb_dsr.io import read_units

    path = tmp / "units.nwb"
    t = time.perf_counter()
    if reuse and path.is_file():
        with h5py.File(path, "r") as f:
            n_spikes = int(f["units/spike_times"].shape[0])
    else:
        n_spikes = write_units(path, hours)
    t_write = time.perf_counter() - t
    times = []
    for _ in range(2):
        t = time.perf_counter()
        obs = read_units(path, BIN)
        times.append(time.perf_counter() - t)
    # spot check against np.histogram on the same edges
    with h5py.File(path, "r") as f:
        ends = f["units/spike_times_index"][()]
        flat = f["units/spike_times"][:int(ends[2])]
    edges = obs.start_times[0] + np.arange(obs.n_bins + 1) * BIN
    ok = all(np.array_equal(np.histogram(flat[(0 if u == 0 else ends[u - 1]):ends[u]], edges)[0],
                            obs.data[0][:, u]) for u in range(3))
    return {"n_units": N_UNITS, "hours": hours, "n_spikes": n_spikes, "bin_size_s": BIN,
            "n_bins": obs.n_bins, "write_s": round(t_write, 2),
            "read_units_s": round(min(times), 3), "read_units_s_first": round(times[0], 3),
            "matches_histogram": bool(ok), "target_s": 10.0,
            "target_met": bool(min(times) <= 10.0)}


def write_lfp(path: Path, minutes: float, compression, seed: int = 0) -> None:
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.data_utils import GenericDataChunkIterator
    from pynwb import NWBHDF5IO
    from pynwb.ecephys import ElectricalSeries

    n = int(round(minutes * 60 * FS))

    class LFPIterator(GenericDataChunkIterator):
        """Synthetic LFP generated block by block (never whole in memory)."""

        def __init__(self, **kw):
            self._rng = np.random.default_rng(seed)
            self._f = self._rng.uniform(3, 40, N_CH)
            self._ph = self._rng.uniform(0, 2 * np.pi, N_CH)
            super().__init__(**kw)

        def _get_data(self, selection):
            rows, cols = selection
            t = np.arange(rows.start, rows.stop)[:, None] / FS
            x = 300 * np.sin(2 * np.pi * self._f[cols] * t + self._ph[cols])
            x += np.random.default_rng(rows.start).normal(0, 60, x.shape)
            return x.astype(np.int16)

        def _get_maxshape(self):
            return (n, N_CH)

        def _get_dtype(self):
            return np.dtype("int16")

    it = LFPIterator(chunk_shape=(8192, N_CH), buffer_gb=0.1)
    data = (H5DataIO(it, compression=compression, compression_opts=4) if compression
            else H5DataIO(it))
    nwb = _nwbfile()
    dev = nwb.create_device(name="probe")
    grp = nwb.create_electrode_group(name="shank0", description="", location="CA1", device=dev)
    for _ in range(N_CH):
        nwb.add_electrode(group=grp, location="CA1")
    region = nwb.create_electrode_table_region(list(range(N_CH)), "all channels")
    mod = nwb.create_processing_module("ecephys", "LFP")
    from pynwb.ecephys import LFP

    lfp = LFP(name="LFP")
    lfp.add_electrical_series(ElectricalSeries(name="ElectricalSeries", data=data,
                                               electrodes=region, rate=FS, conversion=0.195e-6,
                                               filtering="synthetic"))
    mod.add(lfp)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


_HWM = r"""
def hwm_mib():
    # peak resident set of this process (VmHWM; ru_maxrss would include the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_PLAIN = _HWM + r"""
import h5py, json, sys, time
t = time.perf_counter()
with h5py.File(sys.argv[1], "r") as f:
    d = f["processing/ecephys/LFP/ElectricalSeries/data"]
    step = d.chunks[0] * 4
    for a in range(0, d.shape[0], step):
        x = d[a:a + step]
    nbytes = d.size * d.dtype.itemsize
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "nbytes": nbytes, "peak_rss_mib": hwm_mib()}))
"""

_READ = _HWM + r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from nwb_dsr.io import read_lfp
import pynwb, scipy.signal
rss_import = hwm_mib()
t = time.perf_counter()
obs = read_lfp(sys.argv[1], rate=float(sys.argv[2]), preprocess=False)  # decimation only
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "shape": list(obs.data[0].shape), "bin_size": obs.bin_size,
                  "itemsize": obs.data[0].dtype.itemsize,
                  "peak_rss_mib": hwm_mib(), "rss_after_import_mib": rss_import}))
"""

_WARM = r"""
import numpy as np, sys
a = np.ones(int(float(sys.argv[1]) * 2**30) // 8)
"""


def _run(code: str, *args) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get(
        "PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_lfp(tmp: Path, minutes: float, compression, reuse: bool = False) -> dict:
    path = tmp / f"lfp_{compression or 'none'}.nwb"
    t = time.perf_counter()
    if not (reuse and path.is_file()):
        write_lfp(path, minutes, compression)
    t_write = time.perf_counter() - t
    plain, ours = [], []
    for _ in range(2):  # alternate, keep the best of each (same page-cache state)
        plain.append(_run(_PLAIN, path))
        ours.append(_run(_READ, path, FS_OUT))
    p = min(plain, key=lambda r: r["seconds"])
    o = min(ours, key=lambda r: r["seconds"])
    mb = p["nbytes"] / 1e6
    return {"layout": compression or "uncompressed", "channels": N_CH, "minutes": minutes,
            "rate_in": FS, "rate_out": FS_OUT, "dataset_mb": round(mb, 1),
            "file_mb": round(path.stat().st_size / 1e6, 1), "write_s": round(t_write, 1),
            "plain_h5py_s": round(p["seconds"], 3),
            "plain_h5py_mb_s": round(mb / p["seconds"], 1),
            "read_lfp_s": round(o["seconds"], 3), "read_lfp_mb_s": round(mb / o["seconds"], 1),
            "throughput_ratio": round(p["seconds"] / o["seconds"], 3),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in ours), 1),
            "rss_after_import_mib": round(o["rss_after_import_mib"], 1),
            "output_shape": o["shape"], "output_dtype_bytes": o["itemsize"],
            "output_mib": round(np.prod(o["shape"]) * o["itemsize"] / 2**20, 1)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--keep", type=Path, default=None,
                    help="directory to write the files into (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: reuse files already written there")
    ap.add_argument("--layouts", default="gzip,none",
                    help="HDF5 layouts of the LFP dataset: gzip (level 4, pynwb's default "
                         "level) and/or none (uncompressed)")
    ap.add_argument("--warmup-gib", type=float, default=3.0,
                    help="touch this much memory in a child process first: virtual machines "
                         "that back memory lazily otherwise bill first-touch page faults to "
                         "whichever reader runs first (0 to skip)")
    args = ap.parse_args(argv)
    if args.warmup_gib > 0:
        t = time.perf_counter()
        _run(_WARM + "\nprint('{}')", args.warmup_gib)
        print(f"warm-up: touched {args.warmup_gib:g} GiB in {time.perf_counter() - t:.1f} s",
              flush=True)
    warnings.simplefilter("ignore")
    ctx = tempfile.TemporaryDirectory() if args.keep is None else None
    tmp = Path(ctx.name) if ctx else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        res = {"units": bench_units(tmp, args.hours, args.reuse)}
        u = res["units"]
        print(f"read_units: {u['n_units']} units, {u['n_spikes']:,} spikes, {u['n_bins']:,} "
              f"bins of {BIN * 1e3:g} ms in {u['read_units_s']:.2f} s (one core; target <= 10 s)"
              f"; equals np.histogram: {u['matches_histogram']}", flush=True)
        res["lfp"] = []
        for lay in args.layouts.split(","):
            r = bench_lfp(tmp, args.minutes, None if lay == "none" else lay, args.reuse)
            res["lfp"].append(r)
            print(f"read_lfp [{r['layout']}]: {r['dataset_mb']:.0f} MB int16 in "
                  f"{r['read_lfp_s']:.2f} s = {r['read_lfp_mb_s']:.0f} MB/s vs plain h5py "
                  f"{r['plain_h5py_mb_s']:.0f} MB/s ({100 * r['throughput_ratio']:.0f} %, "
                  f"target >= 90 % for gzip); peak RSS {r['peak_rss_mib']:.0f} MiB (target <= 512; "
                  f"output {r['output_mib']:.0f} MiB, Python + imports "
                  f"{r['rss_after_import_mib']:.0f} MiB)", flush=True)
        res["targets"] = {
            "units_le_10s": u["target_met"],
            "lfp_rss_le_512MiB": all(r["peak_rss_mib"] <= 512 for r in res["lfp"]),
            "lfp_gzip_throughput_ge_90pct": all(r["throughput_ratio"] >= 0.9 for r in res["lfp"]
                                                if r["layout"] == "gzip"),
            "lfp_throughput_ratio": {r["layout"]: r["throughput_ratio"] for r in res["lfp"]},
        }
    finally:
        if ctx:
            ctx.cleanup()
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
