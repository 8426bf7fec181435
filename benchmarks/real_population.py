"""Real spike recordings: DSR over several seeds against elephant's GPFA, on any NWB Units table.

    python benchmarks/real_population.py FILE.nwb [--seeds 0 1 2 3 4] [--bin-size 0.01]
        [--max-time 300] [--x-dim 8] [--trials | --no-trials] [--cache DIR] [--skip-gpfa]
        [--smoother-weights W [W ...]]

**Data.** The Units table is binned by :func:`nwb_dsr.read_units` (``--bin-size``, 10 ms by
default). With trials (the default when the file has a trials table, /intervals/trials) each
trial's [start_time, stop_time) window is one segment; ``--no-trials`` (or a file without a
trials table) reads one continuous span (the longest one if ``obs_intervals`` cut it).

**Split.** Units: a seeded 80/20 split into held-in and held-out units
(:func:`spikes_vs_gpfa.split_units`, seed ``--split-seed``, the same for every model seed so
that all fits are scored on the same units). Time: with trials the first 80 % of the trials
train and the last 20 % test; without trials the first 80 % of the bins train and the rest
test.

**DSR.** ``DSR(seed=s, max_time=--max-time, progress=False)``, every other setting at its
default, is fitted on all units of the training data (one segment per training trial), once
per seed ``s`` of ``--seeds``. Per seed the script prints

* ``co_bps``: co-smoothing bits per spike (:func:`nwb_dsr.analysis.evaluate.co_bps`) of the
  held-out units in the test data, the latent inferred from the held-in units only
  (:func:`spikes_vs_gpfa.dsr_cosmooth_rates`, trial by trial, since the forcing targets are
  smoothed along time within a trial), with the smoother's weight chosen by
  :meth:`nwb_dsr.DSR.smooth` (``weight="auto"``); with ``--smoother-weights`` also
  ``co_bps_by_weight``, the same under each of those fixed weights of the dynamics prior (how
  much the figure depends on that choice); with ``--members`` each ensemble member's
  ``co_bps`` too (``members``: the same co-smoothing with that member's selected checkpoint as
  the model, kept by a fit callback: how much the figure depends on which member validation
  picked);
* ``lambda_max``: the largest Lyapunov exponent of the fitted map in 1/s
  (:func:`nwb_dsr.analysis.lyapunov_spectrum`), and ``dynamics``, the class it implies:
  ``"fixed point"`` if λ_max < −ε and the protocol's free run came to rest, ``"periodic
  orbit of the map"`` if λ_max < −ε and it did not, ``"limit cycle"`` if |λ_max| ≤ ε,
  ``"chaos"`` if λ_max > ε (:func:`nwb_dsr.analysis.dynamics_class`), with ε =
  ``--epsilon`` (default :func:`nwb_dsr.analysis.zero_exponent_band`: twenty times the
  inverse averaging time of the estimate, 0.02 1/s for 100,000 steps of 10 ms, whose inverse
  averaging time, 0.001 1/s, is the order of its error on a zero exponent);
* ``protocol_D_H`` and ``protocol_D_stsp``: the library's evaluation protocol
  (:meth:`nwb_dsr.DSR.evaluation_protocol`, :mod:`nwb_dsr.protocol`) of a free run against the
  test data, i.e. the power-spectrum Hellinger distance and the state-space divergence between
  generated and held-out *smoothed* counts in the standardised forcing space (leading principal
  components of link⁻¹ of kernel-smoothed counts), not between raw rasters;
* ``rate_generated_hz`` and ``rate_data_hz``: mean firing rate (over units and bins) of a free
  run of the model (expected counts, as many bins as the test data after a quarter of that as
  transient) and of the test raster;
* ``fit_seconds`` (wall clock) and ``fit_cpu_seconds``.

Summary lines follow: mean ± sd and coefficient of variation (sd / |mean|) of λ_max over seeds,
sign agreement (fraction of seeds whose λ_max has the majority sign) and class agreement, and
co-bps against GPFA.

**GPFA.** ``elephant.gpfa.GPFA`` (``--x-dim`` latents, 10-ms bins as above, at most
``--gpfa-em-iters`` EM iterations, elephant's defaults otherwise) is fitted on all units of
the same training data, given as neo SpikeTrains per training trial (without trials: the
training time cut into consecutive windows of ``--trial-length`` s). Held-out units are
predicted in each test trial (test window) by exact GP inference from the held-in units'
square-rooted counts (:func:`spikes_vs_gpfa.gpfa_cosmooth_rates`, the better of its
``"square"`` and ``"moment"`` predictions); without trials both models are scored on the
test bins covered by whole windows.

The fitted GPFA parameters (C, d, R, gamma, eps) are cached as ``<key>.npz`` (no pickles) plus
``<key>.json`` (the key's fields, covariance type, EM iterations, fit time) in ``--cache``
(default ``~/.cache/nwb_dsr/gpfa``). The key is the SHA-256 of: the file's content hash, the
bin size, ``x_dim``, the EM iteration limit, the unit ids and the training windows (start
times and bin counts, i.e. the trial set). The unit split is not part of it because GPFA is
fitted on all units. A later run with the same data and settings loads the parameters instead
of refitting; ``--skip-gpfa`` skips GPFA altogether.

Progress goes to stderr; the last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfp_real import CheckpointKeeper  # noqa: E402
from spikes_vs_gpfa import (_fit_gpfa, dsr_cosmooth_rates, gpfa_cosmooth_rates,  # noqa: E402
                            split_units)

from nwb_dsr import DSR, Observations, read_units  # noqa: E402
from nwb_dsr.analysis import (at_rest_from_collapse, dynamics_class,  # noqa: E402
                              zero_exponent_band)

__all__ = ["file_hash", "gpfa_cache_key", "save_gpfa", "load_gpfa",
           "spike_trains_of_windows", "main"]

#: Default GPFA cache folder.
DEFAULT_CACHE = Path("~/.cache/nwb_dsr/gpfa").expanduser()
#: Array entries of elephant's ``GPFA.params_estimated`` stored in the cache.
_GPFA_ARRAYS = ("C", "d", "R", "gamma", "eps")


# ============================================================================ helpers
def file_hash(path) -> str:
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gpfa_cache_key(fields: dict) -> str:
    """Cache key: the first 24 hex digits of the SHA-256 of ``fields`` as sorted JSON."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def save_gpfa(folder, key: str, params: dict, meta: dict) -> Path:
    """Write GPFA parameters as ``<key>.npz`` (arrays) and ``<key>.json`` (the rest).

    Returns
    -------
    Path
        The .npz file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(params[k], dtype=np.float64) for k in _GPFA_ARRAYS}
    tmp = folder / f"{key}.tmp.npz"
    np.savez(tmp, **arrays)
    side = dict(meta, covType=params.get("covType", "rbf"),
                notes={k: bool(v) for k, v in (params.get("notes") or {}).items()})
    (folder / f"{key}.json").write_text(json.dumps(side, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / f"{key}.npz")  # the .npz last: it marks a complete entry
    return folder / f"{key}.npz"


def load_gpfa(folder, key: str):
    """``(params, meta)`` of a cached GPFA fit, or None if there is none."""
    folder = Path(folder)
    npz, side = folder / f"{key}.npz", folder / f"{key}.json"
    if not (npz.is_file() and side.is_file()):
        return None
    meta = json.loads(side.read_text())
    with np.load(npz, allow_pickle=False) as z:
        params = {k: z[k] for k in _GPFA_ARRAYS}
    params["d"] = params["d"].ravel()
    params["covType"] = meta.get("covType", "rbf")
    params["notes"] = meta.get("notes", {})
    return params, meta


def _unit_spike_times(path, ids) -> list:
    """Sorted spike times (s) of the units with the given ids, in that order."""
    import pynwb

    with pynwb.NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        units = io.read().units
        all_ids = np.asarray(units.id[:])
        pos = {v: i for i, v in enumerate(all_ids.tolist())}
        return [np.sort(np.asarray(units["spike_times"][pos[u]], dtype=float))
                for u in np.asarray(ids).tolist()]


def spike_trains_of_windows(spike_times, starts, n_bins, bin_size: float):
    """neo SpikeTrains per window (elephant's GPFA input).

    Parameters
    ----------
    spike_times : list of ndarray
        Sorted spike times in s, one array per unit.
    starts : array of float
        Left edge of each window (s).
    n_bins : array of int
        Bins per window; window k is ``[starts[k], starts[k] + n_bins[k] * bin_size)``.
    bin_size : float
        Bin width in s.

    Returns
    -------
    list of list of neo.SpikeTrain
        ``trials[k][i]``: unit ``i`` in window ``k``.
    """
    import neo
    import quantities as pq

    trials = []
    for a, nb in zip(np.asarray(starts, float), np.asarray(n_bins, int)):
        b = a + nb * bin_size
        row = []
        for st in spike_times:
            sel = st[np.searchsorted(st, a, "left"):np.searchsorted(st, b, "left")]
            row.append(neo.SpikeTrain(sel * pq.s, t_start=a * pq.s, t_stop=b * pq.s))
        trials.append(row)
    return trials


def _check_binning(trials, counts, bin_size, log) -> None:
    """Log how many of elephant's training bins differ from read_units' counts."""
    import quantities as pq
    from elephant.gpfa import gpfa_util

    seqs = gpfa_util.get_seqs(trials, bin_size * 1000 * pq.ms)
    diff = total = 0
    for s, c in zip(seqs, counts):
        e = np.asarray(s["y"], np.float64).T ** 2
        m = min(len(e), len(c))
        diff += int(np.sum(np.abs(e[:m] - c[:m]) > 1e-6)) + abs(len(e) - len(c)) * c.shape[1]
        total += c.size
    log(f"GPFA input: {diff} of {total} training bin counts differ from read_units' binning")


def _windows_of(starts, segs, bin_size):
    return np.asarray(starts, float), np.asarray([len(s) for s in segs], int)


def _chunks(counts, t0, first_bin, n_chunks, length, bin_size):
    """Consecutive windows of ``length`` bins from ``first_bin``: (segments, starts)."""
    segs = [counts[first_bin + k * length: first_bin + (k + 1) * length]
            for k in range(n_chunks)]
    starts = t0 + (first_bin + np.arange(n_chunks) * length) * bin_size
    return segs, starts


# ============================================================================ benchmark
def main(argv=None) -> int:
    """Run the benchmark; print progress to stderr and one JSON object as the last line."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", metavar="FILE.nwb", help="NWB file with a Units table")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                    help="DSR seeds (default 0 1 2 3 4)")
    ap.add_argument("--bin-size", type=float, default=0.01, help="bin width in s")
    ap.add_argument("--max-time", type=float, default=300.0,
                    help="DSR training budget per seed in s; 0 for the epoch budget only")
    ap.add_argument("--x-dim", type=int, default=8, help="GPFA latent dimension")
    ap.add_argument("--trials", action=argparse.BooleanOptionalAction, default=None,
                    help="one segment per trial of the trials table (default: if the file "
                    "has one)")
    ap.add_argument("--trial-length", type=float, default=2.0,
                    help="without trials: GPFA window length in s")
    ap.add_argument("--split-seed", type=int, default=0, help="seed of the unit split")
    ap.add_argument("--epsilon", type=float, default=None,
                    help="|lambda_max| <= epsilon (1/s) counts as a limit cycle (default: "
                         "twenty times the inverse averaging time of the estimate, 0.02 at "
                         "10-ms bins)")
    ap.add_argument("--cache", default=None, metavar="DIR",
                    help=f"GPFA parameter cache (default {DEFAULT_CACHE})")
    ap.add_argument("--gpfa-em-iters", type=int, default=500, help="GPFA EM iterations (max)")
    ap.add_argument("--gpfa-floor", type=float, default=1e-3,
                    help="floor of GPFA's expected counts per bin")
    ap.add_argument("--skip-gpfa", action="store_true", help="no GPFA")
    ap.add_argument("--smoother-weights", type=float, nargs="+", default=None, metavar="W",
                    help="also co-smooth under each of these fixed weights of the smoother's "
                         "dynamics prior (co_bps_by_weight)")
    ap.add_argument("--dsr", default="{}", help="JSON dict of extra DSR(...) settings "
                    "(experiments; the benchmark uses the defaults)")
    ap.add_argument("--members", action="store_true",
                    help="also co-smooth with every ensemble member's selected checkpoint")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from nwb_dsr.analysis.evaluate import co_bps
    from nwb_dsr.analysis.lyapunov import lyapunov_spectrum
    from nwb_dsr.io._nwbfile import open_nwb

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"error: no file at {path}.")
    if args.epsilon is None and args.bin_size > 0:
        args.epsilon = zero_exponent_band(args.bin_size)
    if not args.bin_size > 0 or not args.epsilon >= 0:
        raise SystemExit("error: --bin-size must be positive and --epsilon >= 0.")
    if args.smoother_weights and not min(args.smoother_weights) >= 0:
        raise SystemExit("error: --smoother-weights must be numbers >= 0.")
    bs = float(args.bin_size)
    with open_nwb(path) as (nwbfile, _):
        has_trials = getattr(nwbfile, "trials", None) is not None and len(nwbfile.trials) > 0
    use_trials = has_trials if args.trials is None else bool(args.trials)
    if use_trials and not has_trials:
        raise SystemExit(f"error: {path} has no trials table; run with --no-trials.")

    # ------------------------------------------------------------------ data and split
    if use_trials:
        obs = read_units(path, bs, trials=True)
        segs = [np.asarray(s) for s in obs.data]
        n_tr = len(segs)
        n_train = int(round(0.8 * n_tr))
        if n_train < 2 or n_tr - n_train < 1:
            raise SystemExit(f"error: {n_tr} trials are too few for an 80/20 split.")
        train_segs, test_segs = segs[:n_train], segs[n_train:]
        starts = np.asarray(obs.start_times, float)
        gp_train = _windows_of(starts[:n_train], train_segs, bs)
        gp_train_counts = train_segs
        score_segs = test_segs  # scored: whole test trials
        dsr_in = test_segs  # DSR inference trial by trial
        n_dsr_scored = None
    else:
        obs = read_units(path, bs)
        segs = [np.asarray(s) for s in obs.data]
        k = int(np.argmax([len(s) for s in segs]))
        counts, t0 = segs[k], float(obs.start_times[k])
        n_bins = counts.shape[0]
        cut = int(round(0.8 * n_bins))
        L = max(1, int(round(args.trial_length / bs)))
        n_tr_w, n_te_w = cut // L, (n_bins - cut) // L
        if n_tr_w < 2 or n_te_w < 1:
            raise SystemExit(f"error: {n_bins} bins are too few for an 80/20 split with GPFA "
                             f"windows of {args.trial_length} s; use a shorter --trial-length.")
        train_segs = [counts[:cut]]
        tr_chunks, tr_starts = _chunks(counts, t0, 0, n_tr_w, L, bs)
        gp_train = (tr_starts, np.full(n_tr_w, L))
        gp_train_counts = tr_chunks
        score_segs, _ = _chunks(counts, t0, cut, n_te_w, L, bs)
        dsr_in = [counts[cut:]]
        n_dsr_scored = n_te_w * L
        test_segs = [counts[cut:]]
    n_units = segs[0].shape[1]
    held_in, held_out = split_units(n_units, 0.2, seed=args.split_seed)
    if not args.skip_gpfa and not 1 <= args.x_dim < held_in.size:
        raise SystemExit(f"error: --x-dim must be between 1 and the number of held-in units "
                         f"minus one ({held_in.size - 1}); got {args.x_dim}.")
    target = np.concatenate(score_segs)[:, held_out]
    n_test_bins = int(sum(len(s) for s in test_segs))
    log(f"data: {path.name}, {n_units} units, {len(segs)} segment(s), "
        f"{'trials' if use_trials else 'continuous'}; train {sum(len(s) for s in train_segs)} "
        f"bins, test {n_test_bins} bins; held-out units {obs.ids[held_out].tolist()}")

    rnd = lambda v: None if v is None or not np.isfinite(v) else round(float(v), 4)  # noqa: E731

    # ------------------------------------------------------------------ GPFA
    gp = {}
    if not args.skip_gpfa:
        cache = Path(args.cache).expanduser() if args.cache else DEFAULT_CACHE
        fields = {"file_sha256": file_hash(path), "bin_size": bs, "x_dim": int(args.x_dim),
                  "em_max_iters": int(args.gpfa_em_iters),
                  "unit_ids": np.asarray(obs.ids).tolist(),
                  "train_windows": hashlib.sha256(
                      np.round(gp_train[0], 9).tobytes()
                      + np.asarray(gp_train[1], np.int64).tobytes()).hexdigest(),
                  "n_train_windows": int(len(gp_train[0]))}
        key = gpfa_cache_key(fields)
        hit = load_gpfa(cache, key)
        if hit is not None:
            params, meta = hit
            fit_gp, em_iters, cached = meta.get("fit_seconds"), meta.get("em_iterations"), True
            log(f"GPFA: parameters from the cache {cache / key}.npz")
        else:
            log(f"GPFA: fitting x_dim {args.x_dim} on {len(gp_train[0])} training windows "
                f"(cache {cache / key}.npz) ...")
            import logging
            # elephant logs one line per spike train whose spikes it shifts at a bin edge
            import elephant.utils
            elephant.utils.logger.setLevel(logging.ERROR)
            spikes = _unit_spike_times(path, obs.ids)
            train_trials = spike_trains_of_windows(spikes, gp_train[0], gp_train[1], bs)
            _check_binning(train_trials, gp_train_counts, bs, log)
            gpfa, fit_gp = _fit_gpfa(train_trials, args.x_dim, bs, args.gpfa_em_iters)
            if not np.all(gpfa.has_spikes_bool):
                raise SystemExit("error: a unit has no training spikes, so GPFA dropped it; "
                                 "leave such units out of the file's selection.")
            params = gpfa.params_estimated
            em_iters = len(gpfa.fit_info.get("iteration_time", []))
            cached = False
            save_gpfa(cache, key, params, dict(fields, fit_seconds=fit_gp,
                                               em_iterations=em_iters))
        y_in = [np.sqrt(np.asarray(s, np.float64)[:, held_in]).T for s in score_segs]
        preds = gpfa_cosmooth_rates(params, y_in, held_in, held_out, floor=args.gpfa_floor)
        bps_var = {k: float(co_bps(np.concatenate(v), target)) for k, v in preds.items()}
        gp = {"co_bps_gpfa": max(bps_var.values()), "variants": bps_var,
              "fit_seconds": fit_gp, "em_iterations": em_iters, "cached": cached,
              "cache_file": str(cache / f"{key}.npz"), "key": key}
        print(f"GPFA x_dim {args.x_dim}: co-bps {max(bps_var.values()):.4f} "
              f"(square {bps_var['square']:.4f}, moment {bps_var['moment']:.4f}), fit "
              f"{_f(fit_gp)} s{' (cached)' if cached else ''}", flush=True)

    # ------------------------------------------------------------------ DSR per seed
    extra = json.loads(args.dsr)
    train_obs = Observations(train_segs, kind="counts", bin_size=bs)
    per_seed = []
    for seed in args.seeds:
        est = DSR(max_time=args.max_time or None, seed=seed, progress=False, **extra)
        keeper = CheckpointKeeper() if args.members else None
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        est.fit(train_obs, callback=keeper)
        fit_s, fit_cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
        lam = float(lyapunov_spectrum(est)[0])

        def cosmooth_bps(model=est, **how) -> float:
            rates = np.concatenate(dsr_cosmooth_rates(model, [s[:, held_in] for s in dsr_in],
                                                      held_in, held_out, **how))
            return float(co_bps(rates[:n_dsr_scored], target))

        def member_bps(m) -> float | None:
            """co-bps with member ``m``'s selected checkpoint as the model (None when no
            validated checkpoint was selected: every validation of the member failed)."""
            kept = [(lat, out) for s, e, lat, out in keeper.kept
                    if s == m["seed"] and e == m["best_epoch"]]
            if not kept:
                return None
            member = copy.copy(est)
            member.latent_model_, member.observation_model_ = kept[0]
            return cosmooth_bps(member)

        bps, bps_forced = cosmooth_bps(smooth=True), cosmooth_bps(smooth=False)
        by_weight = {f"{w:g}": rnd(cosmooth_bps(weight=w)) for w in args.smoother_weights or ()}
        prot = est.evaluation_protocol().evaluate(est.latent_model_, est.observation_model_,
                                                  test_segs)
        gen = est.generate(n_test_bins, burn_in=n_test_bins // 4)
        r_gen = float(np.mean(gen)) / bs if np.all(np.isfinite(gen)) else float("nan")
        r_dat = float(np.mean(np.concatenate(test_segs))) / bs
        h = est.history_
        row = {"seed": seed, "co_bps": rnd(bps), "co_bps_bin_by_bin": rnd(bps_forced),
               **({"co_bps_by_weight": by_weight} if by_weight else {}),
               "lambda_max": rnd(lam),
               "dynamics": dynamics_class(lam, args.epsilon,
                                          at_rest=at_rest_from_collapse(prot.collapse)),
               "protocol_D_H": rnd(prot.dh), "protocol_D_stsp": rnd(prot.dstsp),
               "protocol_collapse": prot.collapse,
               "rate_generated_hz": rnd(r_gen), "rate_data_hz": rnd(r_dat),
               "fit_seconds": rnd(fit_s), "fit_cpu_seconds": rnd(fit_cpu),
               "epochs": int(h.epochs), "best_epoch": h.best_epoch, "tau": int(est.tau_),
               "tau_method": (est.tau_info_ or {}).get("method"),
               "members": [{**{k: m.get(k) for k in ("seed", "score", "lambda_max",
                                                    "heldout_bits_per_spike", "selected")},
                            **({"co_bps": rnd(member_bps(m))} if keeper else {})}
                           for m in est.members_]}
        per_seed.append(row)
        print(f"seed {seed}: co-bps {bps:.4f} (bin by bin {bps_forced:.4f}), lambda_max "
              f"{lam:.4f} /s ({row['dynamics']}), "
              f"protocol D_H {_f(prot.dh)}, D_stsp {_f(prot.dstsp)}, rate generated "
              f"{r_gen:.2f} Hz vs data {r_dat:.2f} Hz, fit {fit_s:.1f} s ({h.epochs} epochs)"
              + ("; co-bps by smoother weight " + ", ".join(f"{w}: {_f(v)}"
                                                          for w, v in by_weight.items())
                 if by_weight else ""), flush=True)
        if keeper:
            print("  members' co-bps " + ", ".join(
                f"{_f(m['co_bps'])}{' (selected)' if m['selected'] else ''}"
                for m in row["members"]), flush=True)

    # ------------------------------------------------------------------ summary
    lams = np.array([r["lambda_max"] if r["lambda_max"] is not None else np.nan
                     for r in per_seed], float)
    fin = lams[np.isfinite(lams)]
    lam_mean = float(fin.mean()) if fin.size else float("nan")
    lam_sd = float(fin.std(ddof=1)) if fin.size > 1 else float("nan")
    cv = lam_sd / abs(lam_mean) if fin.size > 1 and lam_mean != 0 else float("nan")
    signs = np.sign(fin)
    sign_agree = (float(max((signs > 0).sum(), (signs <= 0).sum()) / fin.size)
                  if fin.size else float("nan"))
    classes = [r["dynamics"] for r in per_seed]
    class_agree = max(classes.count(c) for c in set(classes)) / len(classes)
    bps = np.array([r["co_bps"] if r["co_bps"] is not None else np.nan for r in per_seed])
    bps_mean = float(np.nanmean(bps)) if np.isfinite(bps).any() else float("nan")
    print(f"lambda_max over {len(per_seed)} seeds: {lam_mean:.4f} ± {_f(lam_sd)} /s, CV "
          f"{_f(cv)}; sign agreement {sign_agree:.2f}; classes {classes}", flush=True)
    g = gp.get("co_bps_gpfa")
    print(f"co-bps: DSR {bps_mean:.4f} (mean of seeds) vs GPFA {_f(g)}"
          + ("" if g is None else f"; DSR ahead in {int(np.nansum(bps > g))} of {len(bps)} "
             "seeds"), flush=True)

    out = {
        "file": str(path), "trials": use_trials, "n_units": n_units,
        "held_out_units": np.asarray(obs.ids)[held_out].tolist(),
        "per_seed": per_seed,
        "lambda_max_mean": rnd(lam_mean), "lambda_max_sd": rnd(lam_sd), "lambda_max_cv": rnd(cv),
        "sign_agreement": rnd(sign_agree), "class_agreement": rnd(class_agree),
        "epsilon": args.epsilon,
        "co_bps_ours_mean": rnd(bps_mean), "co_bps_gpfa": rnd(g),
        "co_bps_gpfa_variants": {k: rnd(v) for k, v in gp.get("variants", {}).items()},
        "fit_seconds_gpfa": rnd(gp.get("fit_seconds")), "gpfa_cached": gp.get("cached"),
        "gpfa_cache_file": gp.get("cache_file"),
        "settings": {"bin_size_s": bs, "seeds": list(args.seeds), "max_time": args.max_time,
                     "split_seed": args.split_seed, "x_dim": args.x_dim,
                     "gpfa_em_max_iters": args.gpfa_em_iters,
                     "gpfa_em_iterations": gp.get("em_iterations"),
                     "n_train_segments": len(train_segs), "n_test_segments": len(score_segs),
                     "n_test_bins_scored": int(len(target)),
                     "trial_length_s": None if use_trials else args.trial_length,
                     "skip_gpfa": bool(args.skip_gpfa), "dsr": extra,
                     "threads": torch.get_num_threads()},
    }
    print(json.dumps(out))
    return 0


def _f(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{float(v):.4f}"


if __name__ == "__main__":
    sys.exit(main())
