"""The ``nwb-dsr`` command line: ``fit``, ``evaluate``, ``simulate``, ``info`` and ``demo``.

Every subcommand prints where its results are; with ``--json`` the last line printed is one
JSON object with the same information. Errors print one line to stderr and exit with status 2
(``--debug`` shows the traceback instead).

Examples
--------
>>> from nwb_dsr.cli import main
>>> main(["--version"])
nwb-dsr 0.1.0
0
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]

PROG = "nwb-dsr"


class CLIError(Exception):
    """A user error, reported as one line (exit status 2)."""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _tau(text: str):
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive integer; got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}")
    return value


def _id_list(text: str) -> list:
    """'1,2,5-7' -> [1, 2, 5, 6, 7]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                first, last = part.split("-", 1)
                out.extend(range(int(first), int(last) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated integers or ranges like 0,3,5-9; got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("needs at least one id")
    return out


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _clean(obj):
    """JSON-safe copy: NaN/inf become None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _emit_json(payload: dict) -> None:
    print(json.dumps(_clean(payload), default=_json_default))


# ---- LFP preprocessing options (read_lfp's defaults, each overridable) ----------------------
def _auto_or(kind):
    """argparse type: 'auto', 'none' or a value of ``kind``."""
    def parse(text: str):
        low = text.lower()
        if low in ("auto", "none"):
            return None if low == "none" else "auto"
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be 'auto', 'none' or a number; got "
                                             f"{text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive; got {text!r}")
        return value
    return parse


def _band(text: str):
    """argparse type of --band: 'auto', 'none', or LOW,HIGH in Hz (either may be empty)."""
    low = text.lower()
    if low in ("auto", "none"):
        return None if low == "none" else "auto"
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return tuple(float(p) if p.strip() else None for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto', 'none' or LOW,HIGH in Hz (e.g. "
                                         f"1,40 or ,30); got {text!r}") from None


def _add_lfp_options(p):
    g = p.add_argument_group("LFP preprocessing (--source lfp; defaults of nwb_dsr.read_lfp)")
    g.add_argument("--rate", type=_auto_or(float), default="auto", metavar="HZ|auto|none",
                   help="output sampling rate (default auto: 2.5 x the band's high edge, 75 Hz; "
                   "none: the series' rate)")
    g.add_argument("--band", type=_band, default="auto", metavar="LOW,HIGH|auto|none",
                   help="zero-phase band-pass in Hz (default auto: 0.1,30)")
    g.add_argument("--notch", type=_auto_or(float), default="auto", metavar="HZ|auto|none",
                   help="mains frequency to notch (default auto: 50 or 60 Hz detected from the "
                   "spectrum, or none)")
    g.add_argument("--components", type=_auto_or(int), default="auto", metavar="K|auto|none",
                   help="keep K principal components of the channels (default auto: with more "
                   "than 16 channels, those explaining 95%% of the variance)")
    g.add_argument("--no-zscore", action="store_true", help="do not z-score the channels")
    g.add_argument("--no-preprocess", action="store_true",
                   help="read raw volts at the series' rate (options above left at auto do "
                   "nothing)")


def _lfp_kwargs(args) -> dict:
    """read_lfp keywords from the LFP preprocessing options."""
    if args.bin_size is not None and args.rate != "auto":
        raise CLIError("give --bin-size or --rate for LFP, not both.")
    kw = {"preprocess": not args.no_preprocess, "band": args.band, "notch": args.notch,
          "n_components": args.components, "rate": args.rate}
    if args.no_zscore:
        kw["zscore"] = False
    if args.bin_size is not None:
        kw["rate"] = 1.0 / args.bin_size
    return kw


def _preprocess_line(obs) -> str:
    """One line saying how an LFP series was prepared (from its provenance)."""
    pre = (obs.provenance or {}).get("preprocess")
    if not pre:
        return ""
    if not pre.get("enabled"):
        return (f"preprocessing: none (raw); rate {_fmt(pre.get('rate'))} Hz, band "
                f"{pre.get('band')}, notch {pre.get('notch')}, z-score {pre.get('zscore')}")
    pca = pre.get("pca")
    ch = (f"{pca['n_components']} principal components of {pre.get('channels_in')} channels "
          f"({100 * sum(pca['explained_variance']):.0f}% of the variance)" if pca
          else f"{pre.get('channels_out')} channels")
    notch = pre.get("notch")
    how = (pre.get("how") or {}).get("notch", "")
    applied = pre.get("notch_applied_hz") or []
    ntext = (f"{_fmt(notch)} Hz ({how}; " + (f"notched at {applied} Hz" if applied else
                                            "removed by the anti-aliasing filter") + ")"
             if notch else f"none ({how})")
    return (f"preprocessing: band {pre.get('band')} Hz, rate {_fmt(pre.get('rate'))} Hz, mains "
            f"{ntext}, {ch}, z-score {'on' if pre.get('zscore') else 'off'}")


def _read(path, source: str, *, bin_size=None, units=None, channels=None, interval=None,
          lfp=None):
    """Observations from an NWB file: spike counts of the Units table or an LFP series."""
    from .io import read_lfp, read_units
    kwargs = {}
    if interval is not None:
        kwargs["interval"] = tuple(interval)
    if source == "units":
        if channels is not None:
            raise CLIError("--channels selects LFP channels; with --source units use --units.")
        if units is not None:
            kwargs["units"] = list(units)
        return read_units(path, bin_size=0.01 if bin_size is None else bin_size, **kwargs)
    if units is not None:
        raise CLIError("--units selects units; with --source lfp use --channels.")
    if channels is not None:
        kwargs["channels"] = list(channels)
    if bin_size is not None:
        kwargs["rate"] = 1.0 / bin_size
    kwargs.update(lfp or {})
    return read_lfp(path, **kwargs)


def _metric_line(metrics: dict) -> str:
    pe = metrics.get("prediction_error") or {}
    parts = [f"D_stsp={_fmt(metrics.get('dstsp'))}", f"D_H={_fmt(metrics.get('dh'))}"]
    if pe:
        last = max(pe, key=lambda k: int(k))
        parts.append(f"PE({last})={_fmt(pe[last])}")
    if "bits_per_spike_1step" in metrics:
        parts.append(f"bits/spike={_fmt(metrics['bits_per_spike_1step'])}")
    parts.append(f"lambda_max={_fmt(metrics.get('lambda_max_per_s'))} 1/s")
    return ", ".join(parts)


def _write_report(folder: Path, metrics: dict, extra: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    payload = dict(_clean(metrics))
    if extra:
        payload.update(_clean(extra))
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def _estimator(args, **overrides):
    from .estimator import DSR
    params = dict(model=args.model, latent_dim=args.latent_dim, observation=args.observation,
                  tau=args.tau, epochs=args.epochs, max_time=args.max_time, device=args.device,
                  seed=args.seed, progress=not args.no_progress)
    if args.hidden_dim is not None:
        params["hidden_dim"] = args.hidden_dim
    if args.batches_per_epoch is not None:
        params["batches_per_epoch"] = args.batches_per_epoch
    params.update(overrides)
    return DSR(**params)


def _fit_and_write(args, path: Path, obs, *, out, in_place, overwrite, report, n_lyapunov,
                   n_generate=None, **overrides):
    """Fit, evaluate, write; returns the JSON-able summary and prints the human lines."""
    from .analysis.evaluate import evaluate
    from .nwb import write_dynamics
    print(f"data: {obs!r}")
    pre_line = _preprocess_line(obs)
    if pre_line:
        print(pre_line)
    est = _estimator(args, **overrides)
    t0 = time.perf_counter()
    est.fit(obs)
    h = est.history_
    print(f"fit: {est.latent_model_.name} (M={est.latent_model_.latent_dim}) + "
          f"{est.observation_model_.name} layer, tau={est.tau_} bins "
          f"({(est.tau_info_ or {}).get('method', 'fixed')}), {h.epochs} epochs in "
          f"{h.seconds:.1f} s (stopped: {h.stopped or 'n/a'})")
    metrics = evaluate(est, obs, figures=report, n_lyapunov=n_lyapunov, seed=args.seed)
    print(f"metrics: {_metric_line(metrics)}")
    if metrics.get("collapse") or est.collapse_:
        from .analysis.collapse import describe_collapse
        print(f"WARNING: {describe_collapse(metrics.get('collapse') or est.collapse_)}; the "
              "model does not reproduce the data's dynamics (see the report's spectra).")
    written = write_dynamics(path, est, obs, name=args.name, out=out, in_place=in_place,
                             overwrite=overwrite, metrics=metrics, n_generate=n_generate)
    print(f"wrote fit '{args.name}' to {written} (processing/dynamics/{args.name})")
    summary = {"command": args.command, "source": str(path), "output": str(written),
               "name": args.name, "model": est.latent_model_.name,
               "observation": est.observation_model_.name, "tau": int(est.tau_),
               "epochs": int(h.epochs), "training_seconds": float(h.seconds),
               "stopped": h.stopped, "seconds": time.perf_counter() - t0,
               "metrics": {k: v for k, v in metrics.items() if k != "figures"}}
    if report is not None:
        mpath = _write_report(Path(report), metrics, {
            "output": str(written), "name": args.name,
            "preprocess": (obs.provenance or {}).get("preprocess"),
            "collapse_in_validation": est.collapse_})
        summary["report"] = str(report)
        summary["figures"] = metrics.get("figures", {})
        summary["metrics_json"] = str(mpath)
        figs = ", ".join(sorted(metrics.get("figures", {})))
        print(f"report: {report} (metrics.json; figures: {figs})")
    return summary


# --------------------------------------------------------------------------------------------
# subcommands
# --------------------------------------------------------------------------------------------

def _cmd_fit(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CLIError(f"no file at {path}.")
    out = None if args.out is None else Path(args.out)
    from .nwb.writer import check_output
    check_output(path, name=args.name, out=out, in_place=args.in_place,
                 overwrite=args.overwrite)  # fail before the (long) fit, not after it
    lfp = _lfp_kwargs(args) if args.source == "lfp" else None
    obs = _read(path, args.source, bin_size=None if lfp else args.bin_size, units=args.units,
                channels=args.channels, interval=args.interval, lfp=lfp)
    summary = _fit_and_write(args, path, obs, out=out, in_place=args.in_place,
                             overwrite=args.overwrite, report=args.report,
                             n_lyapunov=args.lyapunov_steps, n_generate=args.n_generate)
    if args.json:
        _emit_json(summary)
    return 0


def _stored_provenance(path: Path, name):
    from .nwb import read_dynamics
    est = read_dynamics(path, name=name)
    prov = dict(est.provenance_ or {})
    return est, prov


def _reread(path: Path, est, prov: dict):
    """The data a fit used, read again from ``path`` (which holds a copy of the source) or
    from the original source file, with the stored selection."""
    obj = str(prov.get("object") or "")
    if not obj:
        raise CLIError("this fit stores no source object (it was fitted to an array); evaluate "
                       "it in Python with nwb_dsr.analysis.evaluate(estimator, data).")
    selection = dict(prov.get("selection") or {})
    source = "units" if est.kind_ == "counts" else "lfp"
    import h5py
    candidates = [path] + ([Path(prov["source"])] if prov.get("source") else [])
    for candidate in candidates:
        if candidate.is_file():
            with h5py.File(candidate, "r") as f:
                if obj in f:
                    return _read_with_selection(candidate, source, est, selection, obj,
                                                prov.get("input_rate"))
    raise CLIError(f"the source object {obj} was found neither in {path} nor in "
                   f"{prov.get('source') or 'the original file (unknown)'}.")


def _read_with_selection(path, source, est, selection: dict, obj: str, prov_rate=None):
    """Call the reader with the selection it recorded in the provenance."""
    from .io import read_lfp, read_units
    sel = {k: v for k, v in selection.items() if v is not None}
    if source == "units":
        kwargs = {"units": sel.get("unit_ids"), "interval": sel.get("interval"),
                  "trials": sel.get("trials"), "trial_window": sel.get("trial_window"),
                  "align_to": sel.get("align_to")}
        if "obs_intervals" in sel:
            kwargs["obs_intervals"] = sel["obs_intervals"]
        return read_units(path, sel.get("bin_size", est.bin_size_), **kwargs)
    kwargs = {"series": obj, "channels": sel.get("channels"), "interval": sel.get("interval"),
              "band": sel.get("band"), "zscore": bool(sel.get("zscore", False)),
              "trials": sel.get("trials"), "trial_window": sel.get("trial_window"),
              "align_to": sel.get("align_to")}
    # the reader's preprocessing as recorded (None values are explicit choices there)
    kwargs.update(preprocess=bool(selection.get("preprocess", False)),
                  band=selection.get("band"), notch=selection.get("notch"),
                  n_components=selection.get("n_components"))
    rate, input_rate = sel.get("rate"), prov_rate
    if rate is not None and (input_rate is None or rate < float(input_rate) * (1 - 1e-9)):
        kwargs["rate"] = float(rate)  # only when the fit's data were resampled
    return read_lfp(path, **kwargs)


def _cmd_evaluate(args) -> int:
    from .analysis.evaluate import evaluate
    path = Path(args.file)
    est, prov = _stored_provenance(path, args.name)
    obs = _reread(path, est, prov)
    print(f"data: {obs!r}")
    metrics = evaluate(est, obs, figures=args.report, n_lyapunov=args.lyapunov_steps,
                       seed=est.seed)
    print(f"metrics: {_metric_line(metrics)}")
    for key in ("dstsp", "dh", "lambda_max_per_s", "tau_pred_s", "bits_per_spike_1step"):
        if key in metrics:
            print(f"  {key}: {_fmt(metrics[key])}")
    for n, v in (metrics.get("prediction_error") or {}).items():
        print(f"  PE({n}): {_fmt(v)}")
    payload = {"command": "evaluate", "file": str(path), "name": args.name,
               "metrics": {k: v for k, v in metrics.items() if k != "figures"}}
    if args.report is not None:
        payload["metrics_json"] = str(_write_report(Path(args.report), metrics))
        payload["figures"] = metrics.get("figures", {})
        print(f"report: {args.report}")
    if args.json:
        _emit_json(payload)
    return 0


def _stored_initial_state(path: Path, name):
    import h5py
    from .nwb.reader import _find
    with h5py.File(path, "r") as f:
        g = _find(f, name, path)
        gen = g.get("generated")
        if gen is not None and "initial_state" in gen:
            return np.asarray(gen["initial_state"][()])
    return None


def _cmd_simulate(args) -> int:
    from .nwb import read_dynamics
    path = Path(args.file)
    out = Path(args.out)
    if out.suffix != ".npy":
        raise CLIError(f"--out must be a .npy file; got {out}.")
    if not out.parent.is_dir():
        raise CLIError(f"the folder of --out {out} does not exist; create it first.")
    est = read_dynamics(path, name=args.name)
    z0 = _stored_initial_state(path, args.name)
    sample = args.seed is not None
    x, z = est.generate(args.steps, z0=z0, return_latent=True, sample=sample, seed=args.seed)
    arr = z if args.latent else x
    np.save(out, arr)
    what = ("latent states" if args.latent else
            ("sampled observations (seed %d)" % args.seed if sample else "expected observations"))
    start = "the stored initial state" if z0 is not None else "the default state"
    print(f"simulated {args.steps} steps ({est.bin_size_ * args.steps:g} s) from {start}: "
          f"{what}, array {arr.shape} saved to {out}")
    if args.json:
        _emit_json({"command": "simulate", "file": str(path), "output": str(out),
                    "shape": list(arr.shape), "sampled": sample, "latent": args.latent,
                    "seed": args.seed, "bin_size": est.bin_size_})
    return 0


def _cmd_info(args) -> int:
    from .io import file_info, format_info
    from .nwb import list_dynamics
    path = Path(args.file)
    info = file_info(path)
    print(format_info(info))
    fits = list_dynamics(path)
    if fits:
        print(f"nwb_dsr fits ({len(fits)}):")
        for f in fits:
            m = f["metrics"]
            print(f"  {f['module']}/{f['name']}: {f['latent_model']} (M={f['latent_dim']}) + "
                  f"{f['observation_model']} on {f['n_channels']} {f['data_kind']} channels of "
                  f"{f['source_object'] or 'an array'}, bin {_fmt(f['bin_size'])} s, "
                  f"tau={f['tau']}, {f['epochs']} epochs; D_stsp={_fmt(m.get('D_stsp'))}, "
                  f"D_H={_fmt(m.get('D_H'))}, lambda_max={_fmt(f['lambda_max'])} 1/s")
    else:
        print("nwb_dsr fits: none")
    if args.json:
        _emit_json({"command": "info", "file": str(path), "info": info, "fits": fits})
    return 0


def _cmd_demo(args) -> int:
    from .datasets import load_ground_truth, write_lorenz_nwb
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    if args.quick:
        sim = dict(n_units=6, duration=8.0, n_lfp_channels=2)
        fit = dict(latent_dim=3, hidden_dim=8, epochs=2, batches_per_epoch=3, batch_size=16,
                   seq_len=40, tau=10, eval_every=1)
        max_time, n_lyapunov, bin_size = (args.max_time or 5.0), 1000, 0.02
    else:
        # the fit is `nwb-dsr fit lorenz_demo.nwb --source units --max-time S`: every model and
        # training setting at its default (10-ms bins, tau from the data's lambda_max)
        sim = dict(n_units=60, duration=300.0, n_lfp_channels=4)
        fit = {}
        max_time, n_lyapunov, bin_size = (args.max_time or 150.0), 20_000, 0.01
    t0 = time.perf_counter()
    src = write_lorenz_nwb(folder / "lorenz_demo.nwb", seed=args.seed, overwrite=True, **sim)
    truth = load_ground_truth(src)
    print(f"recording: {src} ({sim['n_units']} Poisson units driven by a Lorenz-63 latent, "
          f"{sim['duration']:g} s; true lambda_max = {truth['lyapunov_max']:.3f} 1/s)")
    obs = _read(src, "units", bin_size=bin_size)
    defaults = build_parser().parse_args(["fit", str(src), "--source", "units"])
    ns = argparse.Namespace(**{**vars(defaults), "max_time": max_time, "device": args.device,
                               "seed": args.seed, "no_progress": args.no_progress,
                               "name": "dsr", "command": "demo"})
    for key in ("latent_dim", "tau", "epochs", "hidden_dim", "batches_per_epoch"):
        if key in fit:
            setattr(ns, key, fit.pop(key))
    print(f"fit: the defaults of `nwb-dsr fit {src.name} --source units --max-time {max_time:g}`"
          if not args.quick else "fit: a few seconds with a tiny model (--quick)")
    report = folder / "report"
    summary = _fit_and_write(ns, src, obs, out=folder / "lorenz_demo_dsr.nwb", in_place=False,
                             overwrite=True, report=report, n_lyapunov=n_lyapunov, **fit)
    lam = summary["metrics"].get("lambda_max_per_s")
    print(f"lambda_max: fitted {_fmt(lam)} 1/s, true {truth['lyapunov_max']:.3f} 1/s")
    print(f"done in {time.perf_counter() - t0:.0f} s. Open {summary['output']} with pynwb or "
          f"pynapple (processing/dynamics/dsr), see the figures in {report}.")
    summary.update({"recording": str(src), "true_lambda_max": truth["lyapunov_max"]})
    if args.json:
        _emit_json(summary)
    return 0


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------

_THREADS_HELP = ("CPU threads for torch (default 1: the small latent models train fastest on one "
                 "thread, and more oversubscribe a busy machine)")


def _add_common(p, json_help="print a JSON object as the last line"):
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _add_fit_options(p):
    from .models.latent import LATENT_MODELS
    g = p.add_argument_group("model and training")
    g.add_argument("--model", default="auto", choices=["auto", *sorted(LATENT_MODELS)],
                   help="latent model (default auto: clipped_shallow_plrnn for LFP read with "
                   "the default preprocessing, shallow_plrnn otherwise)")
    g.add_argument("--latent-dim", type=_positive_int, default=None, metavar="M",
                   help="latent dimension (default: 3 for spikes; for LFP the data's dimension, "
                   "the principal components explaining 95%% of the variance, at most 16)")
    g.add_argument("--hidden-dim", type=_positive_int, default=None, metavar="H",
                   help="hidden width of the shallow PLRNNs (default 64)")
    g.add_argument("--observation", default="auto", choices=["auto", "poisson", "gaussian"],
                   help="observation layer (default: poisson for spikes, gaussian for LFP)")
    g.add_argument("--tau", type=_tau, default="auto", metavar="auto|N",
                   help="forcing interval in bins, or 'auto' (ln 2 / lambda_max of the data; a "
                        "quarter of it for spike counts)")
    g.add_argument("--epochs", type=_positive_int, default=200, metavar="N",
                   help="maximum number of epochs (default 200)")
    g.add_argument("--batches-per-epoch", type=_positive_int, default=None, metavar="N",
                   help="minibatches per epoch (default 50)")
    g.add_argument("--max-time", type=_positive_float, default=None, metavar="S",
                   help="training time budget in seconds (default: none)")
    g.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="where to train (default cpu)")
    g.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                   help=_THREADS_HELP)
    g.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.add_argument("--lyapunov-steps", type=_positive_int, default=20_000, metavar="N",
                   help="steps of the Lyapunov-spectrum estimate (default 20000)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nwb-dsr`` (all subcommands).

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from nwb_dsr.cli import build_parser
    >>> args = build_parser().parse_args(["fit", "rec.nwb", "--source", "units", "--tau", "20"])
    >>> args.command, args.source, args.tau
    ('fit', 'units', 20)
    """
    from . import __version__
    parser = argparse.ArgumentParser(
        prog=PROG, description="Dynamical-systems reconstruction of NWB recordings with a "
        "latent RNN trained by sparsely forced BPTT.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("fit", help="fit a model to a recording and write it into NWB",
                       description="Read spikes (Units) or LFP from FILE, fit a model, evaluate "
                       "it and write model, trajectories and metrics into an NWB file.")
    p.add_argument("file", metavar="FILE", help="NWB file with the recording")
    p.add_argument("--source", required=True, choices=["units", "lfp"],
                   help="data to fit: spike counts of the Units table, or an LFP series")
    sel = p.add_argument_group("data selection")
    sel.add_argument("--bin-size", type=_positive_float, default=None, metavar="S",
                     help="bin width in seconds (units: default 0.01; lfp: resample to 1/S Hz, "
                     "as --rate)")
    sel.add_argument("--units", type=_id_list, default=None, metavar="IDS",
                     help="unit ids, e.g. 0,3,5-9 (default: all)")
    sel.add_argument("--channels", type=_id_list, default=None, metavar="IDS",
                     help="LFP channel indices, e.g. 0-3 (default: all)")
    sel.add_argument("--interval", type=float, nargs=2, default=None, metavar=("START", "STOP"),
                     help="time interval in seconds (default: the whole recording)")
    _add_lfp_options(p)
    _add_fit_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--name", default="dsr", help="name of the fit in the file (default dsr)")
    where = o.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, metavar="OUT.nwb",
                       help="output file (default: FILE's stem + _dsr.nwb next to it)")
    where.add_argument("--in-place", action="store_true",
                       help="add the fit to FILE itself (atomically)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file or a fit of the same name")
    o.add_argument("--n-generate", type=int, default=None, metavar="N",
                   help="length of the stored generated trajectory (default: data length, "
                   "at most 10000)")
    o.add_argument("--report", default=None, metavar="DIR",
                   help="also write figures and metrics.json into DIR")
    _add_common(p)
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("evaluate", help="evaluate a stored fit on the data it was fitted to",
                       description="Re-read the data a fit used (stored selection) and print its "
                       "metrics.")
    p.add_argument("file", metavar="FILE", help="NWB file holding the fit")
    p.add_argument("--name", default=None, help="name of the fit (needed if several)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write figures and metrics.json into DIR")
    p.add_argument("--lyapunov-steps", type=_positive_int, default=20_000, metavar="N",
                   help="steps of the Lyapunov-spectrum estimate (default 20000)")
    _add_common(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("simulate", help="run a stored model freely and save the trajectory",
                       description="Generate from a stored fit, starting from its stored "
                       "initial state, and save the (steps, channels) array as .npy.")
    p.add_argument("file", metavar="FILE", help="NWB file holding the fit")
    p.add_argument("--name", default=None, help="name of the fit (needed if several)")
    p.add_argument("--steps", type=_positive_int, required=True, metavar="N",
                   help="number of steps to generate")
    p.add_argument("--out", required=True, metavar="X.npy", help="output .npy file")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="draw observations (Poisson counts / Gaussian noise) with this seed "
                   "instead of saving expected values")
    p.add_argument("--latent", action="store_true", help="save the latent states instead")
    _add_common(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("info", help="describe an NWB file and the fits it holds")
    p.add_argument("file", metavar="FILE", help="NWB file")
    _add_common(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="simulate a Lorenz-driven recording, fit it, write a report",
                       description="Write a synthetic recording (Poisson units driven by a "
                       "Lorenz-63 latent) into DIR, fit it with progress shown, write the "
                       "result NWB and a report folder with figures and metrics.json.")
    p.add_argument("--out", default="nwb_dsr_demo", metavar="DIR",
                   help="output folder (default ./nwb_dsr_demo)")
    p.add_argument("--max-time", type=_positive_float, default=None, metavar="S",
                   help="training time budget in seconds (default 150; 5 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="tiny recording and a few seconds of fitting (for tests)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=_positive_int, default=1, metavar="N", help=_THREADS_HELP)
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def _one_line(err: BaseException) -> str:
    msg = str(err).strip().splitlines()
    text = " ".join(line.strip() for line in msg) if msg else type(err).__name__
    if isinstance(err, KeyError):
        text = text.strip("'\"")
    return text


def main(argv=None) -> int:
    """Run the ``nwb-dsr`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on an error (one line on stderr) or bad arguments,
        130 when interrupted.

    Examples
    --------
    >>> from nwb_dsr.cli import main
    >>> main(["simulate", "missing.nwb", "--steps", "10", "--out", "x.npy"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage message
        return int(exc.code or 0)
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # reported as one line; --debug shows the traceback
        if getattr(args, "debug", False):
            raise
        print(f"{PROG} {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
