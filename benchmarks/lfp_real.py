"""Field potentials with the defaults: a fit per seed of any NWB file with an ElectricalSeries.

For each seed, exactly what ``nwb-dsr fit FILE --source lfp --max-time S`` does with nothing
else given, except that the fit sees only the first 80 % of the recording:

1. ``read_lfp(FILE)`` with its defaults (band 0.1–30 Hz, 75 Hz, detected mains removed,
   artefacts set aside, principal components beyond 16 channels, z-scored);
2. ``DSR(max_time=S, seed=seed).fit(train)`` with every other setting at its default
   (``tau="auto"``), on the first 80 % of the time read (of the stretches kept when artefacts
   were set aside, taken in order: ``split_time(0.8, per_segment=False)``);
3. ``evaluate(est, test)`` on the held-out final 20 %: D_stsp and D_H in the space the report
   uses (the preprocessed channels or components, z-scored), the model's λ_max and whether the
   free run collapsed (``collapse``).

The dominant spectral peak (:func:`nwb_dsr.analysis.lyapunov.spectral_peak`: the largest peak
of the mean Welch spectrum of the z-scored channels above a 1/f background, searched between
twice the band's low and 0.8 × its high edge) is given for the held-out data and for a free run
of the same length (from the forced state at the first held-out bin, the first quarter dropped).
``max_power`` is the plain maximum of each spectrum in that range. The peak of the training
part (``peak_train_hz``, the rhythm the fit was shown) and of every 10-s window of the time
read (``peak_data_windows``, printed once, with the recording time at which each window starts)
tell whether the recording keeps one rhythm: a recording whose held-out part holds another
state than its training part has another peak there, which no fit to the training part can
know of. The time set aside as artefacts is printed once too (``preprocess.reject``). For scale,
the D_H of the held-out data against each training window of the same length (the data against
themselves) is listed too (``dh_data_vs_train_windows``; its mean is printed as "data floor").
The ensemble's members (``members``: seed, validation score, D_H and D_stsp of the selected
checkpoint in validation, λ_max, whether selected) show the spread behind the model;
``final_check`` lists the selected member's final check of its best checkpoints (epoch, score,
collapse, and ``probes_collapsed``: how many of the collapse-only runs from states of the
training data and from the mean state collapsed).

``--checkpoints`` shows what model selection had to choose from: every checkpoint that
validation scored, of every member, is kept (a fit callback, whose time the budget does not
count) and scored on the held-out time as the selected model is (D_H, free-run peak,
collapse), next to its validation score and, for the final check's candidates, the final
check's rank and score (its D_stsp, D_H and rhythm error) and the score of runs from states
of the training data against the training data (``train_score``: the same protocol, the
fit's part of the training data as reference, so its D_H resolves the spectrum far more
finely than the short validation piece's). It prints how many of the final check's
candidates that did not collapse meet both targets (held-out D_H ≤ 0.3, peak within 15 %),
which one each rule would pick, and the dominant peak of the validation data
(``peak_validation_hz``). ``--validation-blocks K`` (experiments) validates on K blocks spread
evenly through the training part, together as long as the default validation piece
(``validation_fraction`` of it), instead of on the end of each stretch.

``--lorenz`` runs the same on a synthetic recording with known truth instead of FILE: 16 LFP
channels, each a noisy linear mixture of a Lorenz-63 latent at one Lorenz time unit per second
(λ_max = 0.906 /s), 250 Hz, ``--duration`` seconds (:func:`nwb_dsr.datasets.write_lorenz_nwb`),
and reports the model's λ_max against the truth.

    python benchmarks/lfp_real.py ../shared/data/nwb/eeg_openbci_8ch_blinks_jaw_alpha.nwb \\
        --seeds 0 1 2 --max-time 300
    python benchmarks/lfp_real.py --lorenz --seeds 0 --max-time 300

One line per seed, then one JSON object (the last line).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import nwb_dsr as dsr
from nwb_dsr.analysis.lyapunov import spectral_peak
from nwb_dsr.config import LYAPUNOV_STEPS
from nwb_dsr.metrics import power_spectrum_distance
from nwb_dsr.training.trainer import split_validation


#: Length (s) of the windows whose dominant peaks are listed (``peak_data_windows``).
WINDOW_S = 10.0
#: Targets of a field-potential fit on held-out time: D_H at most this, ...
DH_TARGET = 0.3
#: ... and the free run's dominant peak within this fraction of the data's.
PEAK_TOLERANCE = 0.15


def run(path, seed: int, max_time: float, n_lyapunov: int, settings: dict | None = None,
        checkpoints: bool = False, validation_blocks: int | None = None) -> dict:
    obs = dsr.read_lfp(path)
    pre = obs.provenance["preprocess"]
    band = pre["band"] or [None, None]
    train, test = obs.split_time(0.8, per_segment=False)
    est = dsr.DSR(**{"max_time": max_time, "seed": seed, "progress": False, **(settings or {})})
    fit_part, validation = train, None
    if validation_blocks:
        fit_part, validation = blocks_held_back(
            train, est.get_params()["validation_fraction"], validation_blocks)
    keeper = CheckpointKeeper() if checkpoints else None
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(fit_part, validation=validation, callback=keeper)
    fit_s = time.perf_counter() - t0
    m = dsr.evaluate(est, test, n_lyapunov=n_lyapunov, seed=seed)
    x = np.concatenate(test.data)
    T = len(x)
    # the free run evaluate() scored (the evaluation protocol), in the space it compared
    res = est.evaluation_protocol(n_steps=T, seed=seed, n_starts=1).evaluate(
        est.latent_model_, est.observation_model_, test.data)
    rng = {"fmin": None if band[0] is None else 2.0 * band[0],
           "fmax": None if band[1] is None else 0.8 * band[1]}
    pd = spectral_peak(res.reference, obs.bin_size, **rng)
    pg = (spectral_peak(res.generated, obs.bin_size, **rng) if np.isfinite(res.generated).all()
          else {"frequency": None, "max_power_frequency": None})  # an exploded free run
    ptr = spectral_peak(train.data, obs.bin_size, **rng)  # the rhythm the fit was shown
    windows = window_peaks(obs, WINDOW_S, rng)
    info = est.tau_info_
    # the data against themselves: D_H between the held-out part and every training window of
    # the same length (how far the recording's own spectrum drifts over time)
    xt = np.concatenate(train.data)
    floor = [power_spectrum_distance(x, xt[a:a + T]) for a in range(0, len(xt) - T + 1, T)]
    rel = relative_error(pg["frequency"], pd["frequency"])
    return {
        "seed": seed, "dh": m["dh"], "dstsp": m["dstsp"],
        "dh_data_vs_train_windows": [float(v) for v in floor],
        "peak_data_hz": pd["frequency"], "peak_gen_hz": pg["frequency"],
        "peak_rel_error": rel,
        "peak_train_hz": ptr["frequency"],
        "peak_rel_error_train": relative_error(pg["frequency"], ptr["frequency"]),
        "peak_data_windows": windows,
        "max_power_data_hz": pd["max_power_frequency"],
        "max_power_gen_hz": pg["max_power_frequency"],
        "lambda_max_model_per_s": m["lambda_max_per_s"],
        "lambda_max_data_per_s": info.get("lambda_max_per_s"),
        "tau": int(est.tau_), "tau_method": info.get("method"),
        "tau_lower_bound": info.get("lower_bound"),
        "fit_seconds": fit_s, "epochs": est.history_.epochs,
        "collapse": m["collapse"], "collapse_in_validation": est.collapse_,
        "pe1": m["prediction_error"].get("1"),
        "latent_dim": est.latent_model_.latent_dim, "n_channels": obs.n_channels,
        "bin_size": obs.bin_size, "preprocess": pre,
        "warnings": sorted({type(w.message).__name__ for w in caught}),
        "members": [{k: mem.get(k) for k in ("seed", "score", "D_H", "D_stsp", "lambda_max",
                                             "selected", "collapse")}
                    for mem in est.members_],
        "final_check": final_check(est.history_),
        **(keeper.report(est, test, fit_part, validation, seed, rng) if keeper else {}),
    }


def final_check(history) -> list:
    """The final check of the selected member's best checkpoints, best validation first:
    epoch, score, collapse and how many of its collapse-only runs from states of the training
    data and the mean state came to rest, exploded or became non-finite."""
    return [{"epoch": e, "score": s, "collapse": c, "probes_collapsed": p}
            for e, s, c, p in zip(history.final_epochs, history.final_score,
                                  history.final_collapse, history.final_probes_collapsed)]


class CheckpointKeeper:
    """A fit callback that keeps a copy of the model after every epoch of every member, with
    that member's training history (filled in by the end of the fit: the validations, among
    them one after the last epoch when it was not a validation epoch, and the final check)."""

    def __init__(self):
        self.copies, self.histories, self.window = [], {}, None

    def __call__(self, trainer, epoch, seconds):
        self.histories[trainer.run.seed] = trainer.history
        self.window = trainer.scheme.window
        self.copies.append((trainer.run.seed, epoch, copy.deepcopy(trainer.latent),
                            copy.deepcopy(trainer.readout)))

    @property
    def kept(self) -> list:
        """The copies of the validated epochs."""
        return [c for c in self.copies if c[1] in self.histories[c[0]].val_epochs]

    def report(self, est, test, fit_part, validation, seed: int, rng: dict) -> dict:
        """``checkpoints``: every kept checkpoint scored on the held-out time as the selected
        model is, with its validation score and, for the final check's candidates, the final
        check's rank, score and collapse and ``train_score`` (the protocol against the part of
        ``fit_part`` that trained the model); ``peak_validation_hz``: the dominant peak of the
        validation data (``validation``, or the piece of ``fit_part`` the trainer held back)."""
        if validation is None:
            train_segs, val_segs = split_validation(
                list(fit_part.data), est.get_params()["validation_fraction"], self.window)
        else:
            train_segs, val_segs = list(fit_part.data), list(validation.data)
        selected = next(m for m in est.members_ if m["selected"])
        T = sum(len(s) for s in test.data)
        held_out = est.evaluation_protocol(n_steps=T, seed=seed, n_starts=1)
        on_train = est.evaluation_protocol(n_starts=5)
        rows = []
        for member, epoch, latent, readout in self.kept:
            hist = self.histories[member]
            row = {"member": member, "epoch": epoch,
                   "selected": member == selected["seed"] and epoch == selected["best_epoch"],
                   "val_score": hist.val_score[hist.val_epochs.index(epoch)],
                   "val_collapse": hist.val_collapse[hist.val_epochs.index(epoch)]}
            if epoch in hist.final_epochs:
                i = hist.final_epochs.index(epoch)
                tr = on_train.evaluate(latent, readout, train_segs)
                row.update(final_rank=hist.final_rank[i],
                           final_rhythm_error=hist.final_rhythm_error[i],
                           final_score=hist.final_score[i], final_dstsp=hist.final_dstsp[i],
                           final_dh=hist.final_dh[i], final_collapse=hist.final_collapse[i],
                           train_score=tr.score, train_dh=tr.dh, train_collapse=tr.collapse)
            res = held_out.evaluate(latent, readout, test.data)
            finite = bool(np.isfinite(res.generated).all())
            peak = lambda x: spectral_peak(x, est.bin_size_, **rng)["frequency"]  # noqa: E731
            pd, pg = peak(res.reference), peak(res.generated) if finite else None
            row.update(dh=power_spectrum_distance(res.reference, res.generated)
                       if finite else None,
                       peak_gen_hz=pg, peak_rel_error=relative_error(pg, pd),
                       collapse=res.collapse)
            rows.append(row)
        return {"checkpoints": rows, "peak_validation_hz": spectral_peak(
            val_segs, est.bin_size_, **rng)["frequency"]}


def print_checkpoints(rows: list) -> None:
    """The final check's candidates (best rank first) and what each rule picks."""
    cands = sorted((r for r in rows if "final_score" in r), key=lambda r: r["final_rank"])
    fine = [r for r in cands if r["final_collapse"] is None]
    f = lambda v, d=3: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
    for r in cands:
        print(f"  member {r['member']} epoch {r['epoch']}: rank {f(r['final_rank'])}, final "
              f"score {f(r['final_score'])} (D_stsp {f(r['final_dstsp'])}, D_H "
              f"{f(r['final_dh'])}, rhythm off by {f(r['final_rhythm_error'])}; "
              f"{r['final_collapse'] or 'no collapse'}), on the training part "
              f"{f(r['train_score'])}; held out: D_H {f(r['dh'])}, peak "
              f"{f(r['peak_gen_hz'], 2)} Hz{', both targets' if meets_targets(r) else ''}"
              f"{', selected' if r['selected'] else ''}", flush=True)
    pick = lambda key: min(fine, key=key) if fine else None  # noqa: E731
    for name, r in (("the final check's rank", pick(lambda r: r["final_rank"])),
                    ("final score", pick(lambda r: r["final_score"])),
                    ("score on the training part", pick(lambda r: r["train_score"]))):
        if r is not None:
            print(f"  by {name}: member {r['member']} epoch {r['epoch']}, held-out D_H "
                  f"{f(r['dh'])}, peak {f(r['peak_gen_hz'], 2)} Hz", flush=True)
    print(f"  {sum(map(meets_targets, fine))} of the {len(fine)} candidates that did not "
          f"collapse (of {len(cands)}; {len(rows)} checkpoints validated) meet both targets",
          flush=True)


def meets_targets(row) -> bool:
    """Held-out D_H at most :data:`DH_TARGET` and the peak within :data:`PEAK_TOLERANCE`."""
    return (row["dh"] is not None and row["dh"] <= DH_TARGET
            and row["peak_rel_error"] is not None and row["peak_rel_error"] <= PEAK_TOLERANCE)


def blocks_held_back(obs, fraction: float, k: int):
    """``obs`` split into the part to fit and ``k`` validation blocks of equal length, together
    ``fraction`` of its bins, centred on the k equal parts of its time (a block that would
    cross the edge of a stretch is left out)."""
    segs = list(obs.data)
    n = sum(len(x) for x in segs)
    b = int(round(fraction * n / k))
    centres = [(j + 0.5) * n / k for j in range(k)]
    fit, val, offset = [], [], 0
    for x in segs:
        cur = 0
        for c in centres:
            a = int(round(c - b / 2)) - offset
            if 0 <= a and a + b <= len(x) and a >= cur:
                if a > cur:
                    fit.append(x[cur:a])
                val.append(x[a:a + b])
                cur = a + b
        if cur < len(x):
            fit.append(x[cur:])
        offset += len(x)
    if not val:
        raise ValueError(f"no validation block of {b} bins fits into a stretch of the data.")
    part = lambda d: dataclasses.replace(obs, data=d, start_times=None, ids=None)  # noqa: E731
    return part(fit), part(val)


def relative_error(value, reference):
    """|value − reference| / reference, or None when either is missing."""
    return None if value is None or reference is None else abs(value - reference) / reference


def window_peaks(obs, seconds: float, rng: dict) -> list:
    """The dominant peak of each of the consecutive windows of about ``seconds`` that cover
    the time read (``start_s``: recording time of the window's start): whether the
    recording has one rhythm throughout, or its held-out part another than its training part."""
    x = np.concatenate(obs.data)
    # the left edge of each bin in recording time
    t = np.concatenate([obs.times(k) for k in range(obs.n_segments)]) - obs.bin_size / 2
    k = max(int(round(len(x) * obs.bin_size / seconds)), 1)
    edges = np.linspace(0, len(x), k + 1).astype(int)
    return [{"start_s": round(float(t[a]), 3),
             "peak_hz": spectral_peak(x[a:b], obs.bin_size, **rng)["frequency"]}
            for a, b in zip(edges[:-1], edges[1:])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", help="NWB file with an ElectricalSeries")
    ap.add_argument("--lorenz", action="store_true",
                    help="use a synthetic Lorenz-driven LFP mixture with known λ_max instead")
    ap.add_argument("--duration", type=float, default=300.0,
                    help="--lorenz: recording length in s (default 300)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-time", type=float, default=300.0, help="fit budget in s (default 300)")
    ap.add_argument("--lyapunov-steps", type=int, default=LYAPUNOV_STEPS)
    ap.add_argument("--dsr", default="{}", help="JSON dict of extra DSR(...) settings "
                    "(experiments; the benchmark uses the defaults)")
    ap.add_argument("--checkpoints", action="store_true",
                    help="keep every validated checkpoint and score it on the held-out time")
    ap.add_argument("--validation-blocks", type=int, default=None, metavar="K",
                    help="experiments: validate on K blocks spread through the training part")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    truth = None
    if args.lorenz:
        from nwb_dsr.datasets import load_ground_truth, write_lorenz_nwb
        tmp = Path(tempfile.mkdtemp(prefix="nwb_dsr_lfp_"))
        path = write_lorenz_nwb(tmp / "lorenz_lfp.nwb", n_units=4, duration=args.duration,
                                n_lfp_channels=16, seed=0)
        truth = float(load_ground_truth(path)["lyapunov_max"])
    elif args.file:
        path = Path(args.file)
    else:
        ap.error("give FILE or --lorenz")
    rows = []
    for seed in args.seeds:
        r = run(path, seed, args.max_time, args.lyapunov_steps, json.loads(args.dsr),
                checkpoints=args.checkpoints, validation_blocks=args.validation_blocks)
        if truth is not None:
            r["lambda_max_true_per_s"] = truth
            lam = r["lambda_max_model_per_s"]
            r["lambda_rel_error"] = None if lam is None else abs(lam - truth) / truth
        rows.append(r)
        f = lambda v, d=3: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
        line = (f"seed {seed}: D_H {f(r['dh'])}  D_stsp {f(r['dstsp'])}  peak data "
                f"{f(r['peak_data_hz'], 2)} Hz (training part {f(r['peak_train_hz'], 2)} Hz)"
                f" / free run {f(r['peak_gen_hz'], 2)} Hz  "
                f"lambda_max model {f(r['lambda_max_model_per_s'], 2)} /s (data "
                f"{f(r['lambda_max_data_per_s'], 2)})  D_H data floor "
                f"{f(float(np.mean(r['dh_data_vs_train_windows'])))}  "
                f"tau {r['tau']} ({r['tau_method']})  "
                f"fit {r['fit_seconds']:.0f} s, {r['epochs']} epochs  collapse "
                f"{r['collapse'] or 'none'}")
        if truth is not None:
            line += f"  true lambda_max {truth:.3f} /s, error {f(r['lambda_rel_error'])}"
        print(line, flush=True)
        if args.checkpoints:
            print(f"  validation data: peak {f(r['peak_validation_hz'], 2)} Hz; the final "
                  "check's candidates:", flush=True)
            print_checkpoints(r["checkpoints"])
        if len(rows) == 1:
            rej = (r["preprocess"].get("reject") or {})
            spans = ", ".join(f"{round(a, 1) + 0.0:.1f}-{round(b, 1) + 0.0:.1f} s"
                              for a, b in rej.get("rejected", []))
            print("set aside as artefacts: " + (
                f"{spans} ({rej['rejected_s']:.1f} s of {rej['rejected_s'] + rej['kept_s']:.1f} s)"
                if spans else "none" if rej.get("tested") else "not tested"), flush=True)
            print(f"data peak by {WINDOW_S:g}-s window: " + ", ".join(
                f"{w['start_s']:g} s {f(w['peak_hz'], 2)} Hz" for w in r["peak_data_windows"]),
                flush=True)
    print(json.dumps({"file": str(path), "max_time": args.max_time,
                      "dsr": json.loads(args.dsr), "runs": rows},
                     default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
