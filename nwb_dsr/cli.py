"""The ``nwb-dsr`` command line: ``fit``, ``evaluate``, ``simulate``, ``info``, ``demo`` and
``sweep``. ``fit`` and ``info`` also take the http(s) URL of an NWB file (streamed).

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
import re
import sys
import time
from pathlib import Path

import numpy as np

from ._json import jsonable
from .config import DEFAULT_SPIKE_BIN_SIZE, LYAPUNOV_STEPS, DSRConfig

__all__ = ["main", "build_parser"]

PROG = "nwb-dsr"


class CLIError(Exception):
    """A user error, reported as one line (exit status 2)."""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _parsed(text: str, cast, what: str):
    """``cast(text)`` if it is a finite number > 0 (argparse's error otherwise)."""
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}")
    return value


def _tau(text: str):
    return "auto" if text == "auto" else _parsed(text, int, "'auto' or a positive integer")


def _positive_int(text: str) -> int:
    return _parsed(text, int, "a positive integer")


def _positive_float(text: str) -> float:
    return _parsed(text, float, "a positive number")


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


_ID_LIST = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$")


def _row_selector(text: str, option: str, *, allow_all: bool = False):
    """A row selection of a table from its command-line text.

    ``"all"`` (where allowed) stays ``"all"``; comma-separated integers and ranges become a list
    (``"0,3,5-7"`` -> [0, 3, 5, 6, 7]); a bare name is a boolean column; anything else is a
    pandas expression evaluated on the table as a DataFrame (e.g. ``"quality == 'good'"``),
    whose result must be one boolean per row.
    """
    text = str(text).strip()
    if not text:
        raise CLIError(f"{option} needs a value; got an empty string.")
    if allow_all and text.lower() == "all":
        return "all"
    if _ID_LIST.match(text):
        return _id_list(text)
    if text.isidentifier():
        return text

    def mask(df, expr=text):
        return np.asarray(df.eval(expr, engine="python"))
    return mask


def _trial_options(args) -> dict:
    """read_units / read_lfp keywords of the trial options (empty without --trials)."""
    trials = getattr(args, "trials", None)
    extra = {"--align-to": getattr(args, "align_to", None),
             "--trial-window": getattr(args, "trial_window", None),
             "--trial-filter": getattr(args, "trial_filter", None)}
    if trials is None:
        given = [k for k, v in extra.items() if v is not None]
        if given:
            raise CLIError(f"{', '.join(given)} applies to trials; add --trials (all trials) or "
                           "--trials ROWS|COLUMN to read one segment per trial.")
        return {}
    kw = {"trials": _row_selector(trials, "--trials", allow_all=True)}
    if args.trial_window is not None:
        before, after = args.trial_window
        if not (math.isfinite(before) and math.isfinite(after)) or after <= before:
            raise CLIError(f"--trial-window BEFORE AFTER must be finite with BEFORE < AFTER "
                           f"(seconds around the alignment event); got {before:g} {after:g}.")
        kw["trial_window"] = (float(before), float(after))
    if args.align_to is not None:
        if args.trial_window is None:
            raise CLIError(f"--align-to {args.align_to} needs --trial-window BEFORE AFTER in "
                           "seconds relative to that event, e.g. --trial-window -0.5 1.0.")
        kw["align_to"] = args.align_to
    if args.trial_filter is not None:
        kw["trial_filter"] = _row_selector(args.trial_filter, "--trial-filter")
        if isinstance(kw["trial_filter"], list):
            raise CLIError("--trial-filter takes a boolean column or an expression on the "
                           "trials table (e.g. \"correct\" or \"rt < 0.5\"); select trials by "
                           f"row with --trials ROWS; got {args.trial_filter!r}.")
    return kw


def _record_cli_selection(obs, args) -> None:
    """Add the selection as typed on the command line to the data's provenance."""
    typed = {"trials": getattr(args, "trials", None),
             "trial_filter": getattr(args, "trial_filter", None),
             "align_to": getattr(args, "align_to", None),
             "trial_window": getattr(args, "trial_window", None),
             "units": getattr(args, "units", None)}
    typed = {k: (list(v) if isinstance(v, tuple) else v) for k, v in typed.items()
             if v is not None}
    if typed and obs.provenance is not None:
        obs.provenance.setdefault("selection", {})["command_line"] = jsonable(typed)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _emit_json(payload: dict) -> None:
    print(json.dumps(jsonable(payload)))


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
    g.add_argument("--reject", type=_auto_or(float), default="auto", metavar="FACTOR|auto|none",
                   help="set aside 1-s windows whose peak-to-peak amplitude exceeds FACTOR x the "
                   "channel's median (artefacts: blinks, muscle, electrode pops; with trials, "
                   "drop the trials holding one) (default auto: 4; none: keep everything)")
    g.add_argument("--no-zscore", action="store_true", help="do not z-score the channels")
    g.add_argument("--no-preprocess", action="store_true",
                   help="read raw volts at the series' rate (options above left at auto do "
                   "nothing)")


def _lfp_kwargs(args) -> dict:
    """read_lfp keywords from the LFP preprocessing options."""
    if args.bin_size is not None and args.rate != "auto":
        raise CLIError("give --bin-size or --rate for LFP, not both.")
    kw = {"preprocess": not args.no_preprocess, "band": args.band, "notch": args.notch,
          "n_components": args.components, "rate": args.rate, "reject": args.reject}
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
            f"{ntext}, {_reject_text(pre.get('reject'))}, {ch}, z-score "
            f"{'on' if pre.get('zscore') else 'off'}")


def _reject_text(rec) -> str:
    """What artefact rejection set aside (from ``provenance["preprocess"]["reject"]``)."""
    if not rec:
        return "artefacts kept (reject none)"
    if not rec.get("tested"):
        return f"artefacts not tested ({rec['windows']} windows of {rec['window_s']:g} s)"
    on = "" if rec.get("min_channels", 1) == 1 else f" on {rec['min_channels']}+ channels"
    rule = f"peak-to-peak > {rec['factor']:g} x median in {rec['window_s']:g}-s windows{on}"
    if rec.get("trials_dropped"):
        return f"{len(rec['trials_dropped'])} trials with artefacts dropped ({rule})"
    if not rec.get("rejected"):
        return f"no artefacts ({rule})"
    total = rec["kept_s"] + rec["rejected_s"]
    return (f"{rec['rejected_s']:.1f} s of {total:.1f} s set aside as artefacts in "
            f"{len(rec['rejected'])} spans ({rule})")


def _read(path, source: str, *, bin_size=None, units=None, channels=None, interval=None,
          lfp=None, trials=None):
    """Observations from an NWB file: spike counts of the Units table or an LFP series."""
    from .io import read_source
    kwargs = dict(trials or {})
    if interval is not None:
        kwargs["interval"] = tuple(interval)
    if source == "units" and channels is not None:
        raise CLIError("--channels selects LFP channels; with --source units use --units.")
    if source == "lfp" and units is not None:
        raise CLIError("--units selects units; with --source lfp use --channels.")
    if units is not None:
        kwargs["units"] = _row_selector(units, "--units")
    if channels is not None:
        kwargs["channels"] = list(channels)
    kwargs.update(lfp or {})
    if "rate" in kwargs:  # the LFP options already turned --bin-size into a rate
        bin_size = None
    return read_source(path, source, bin_size=bin_size, **kwargs)


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


def _ensemble_line(ens: dict) -> str:
    """One line on the spread of an ensemble (``evaluate(...)["ensemble"]``)."""
    def spread(name, unit=""):
        d = ens.get(name) or {}
        if not d.get("n"):
            return None
        return (f"{name} median {_fmt(d['median'])}{unit} "
                f"[{_fmt(d['min'])}, {_fmt(d['max'])}]")
    seeds = [int(k.split("_")[1]) for k in ens.get("members", {})]
    parts = [f"{ens['n_members']} fits (seeds {', '.join(map(str, seeds))}), seed "
             f"{ens.get('selected_seed')} selected (lowest selection score)"]
    parts += [p for p in (spread("lambda_max", " 1/s"), spread("D_stsp"), spread("D_H"),
                          spread("heldout_bits_per_spike", " bits/spike")) if p]
    if ens.get("lambda_max_sign_agreement") is not None:
        parts.append(f"lambda_max sign agreement {ens['lambda_max_sign_agreement']:.0%}")
    dyn = ens.get("dynamics") or {}
    if dyn.get("counts"):
        text = "dynamics " + ", ".join(f"{c} {n}" for c, n in dyn["counts"].items())
        if dyn.get("agreement") is not None and dyn["agreement"] < 1:
            text += " (the members disagree: this fit does not settle the dynamics class)"
        parts.append(text)
    cut = [f"seed {k.split('_')[1]} after {m.get('epochs')} epochs"
           for k, m in ens.get("members", {}).items() if m.get("stopped") == "max_time"]
    if cut:
        parts.append("stopped by the time budget: " + ", ".join(cut))
    return "; ".join(parts)


def _write_report(folder: Path, metrics: dict, extra: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    payload = jsonable({**metrics, **(extra or {})})
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def _estimator(args, **overrides):
    """DSR with the settings given on the command line; every other one at its default."""
    from .estimator import DSR
    params = {name: getattr(args, name) for name in _cli_settings()
              if getattr(args, name, None) is not None}
    params["progress"] = not args.no_progress
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
    if metrics.get("ensemble"):
        print(f"ensemble: {_ensemble_line(metrics['ensemble'])}")
    if metrics.get("collapse") or est.collapse_:
        from .collapse import describe_collapse
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
    from .io.remote import is_url
    if is_url(args.file):
        return _fit_url(args)
    path = Path(args.file)
    if not path.is_file():
        raise CLIError(f"no file at {path}.")
    out = None if args.out is None else Path(args.out)
    from .nwb.writer import check_output
    check_output(path, name=args.name, out=out, in_place=args.in_place,
                 overwrite=args.overwrite)  # fail before the (long) fit, not after it
    lfp = _lfp_kwargs(args) if args.source == "lfp" else None
    obs = _read(path, args.source, bin_size=None if lfp else args.bin_size, units=args.units,
                channels=args.channels, interval=args.interval, lfp=lfp,
                trials=_trial_options(args))
    _record_cli_selection(obs, args)
    summary = _fit_and_write(args, path, obs, out=out, in_place=args.in_place,
                             overwrite=args.overwrite, report=args.report,
                             n_lyapunov=args.lyapunov_steps, n_generate=args.n_generate)
    if args.json:
        _emit_json(summary)
    return 0


def _fit_url(args) -> int:
    """``fit`` of a file given by URL: read it streamed, write the result as a new local file
    (the source is downloaded once for the write)."""
    from .io.remote import local_copy, url_name
    if args.in_place:
        raise CLIError("--in-place needs a local file; a fit of a URL is written to a new local "
                       "file (--out, default: the URL's file name + _dsr.nwb here).")
    out = Path(args.out) if args.out else Path(Path(url_name(args.file)).stem + "_dsr.nwb")
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists; pass --overwrite to replace it, or choose another --out.")
    if not out.resolve().parent.is_dir():
        raise CLIError(f"the folder of --out {out} does not exist; create it first.")
    obs = _read(args.file, args.source, bin_size=args.bin_size, units=args.units,
                channels=args.channels, interval=args.interval, trials=_trial_options(args))
    _record_cli_selection(obs, args)
    with local_copy(args.file, out.resolve().parent) as local:
        summary = _fit_and_write(args, local, obs, out=out, in_place=False, overwrite=True,
                                 report=args.report, n_lyapunov=args.lyapunov_steps,
                                 n_generate=args.n_generate)
    summary["source"] = args.file
    if args.json:
        _emit_json(summary)
    return 0


def _cmd_evaluate(args) -> int:
    from .analysis.evaluate import evaluate
    from .io import read_provenance
    from .nwb import read_dynamics
    path = Path(args.file)
    est = read_dynamics(path, name=args.name)
    obs = read_provenance(est.provenance_ or {}, est.kind_, est.bin_size_, search=[path])
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
    from .io.remote import is_url
    from .nwb import list_dynamics
    path = args.file if is_url(args.file) else Path(args.file)
    info = file_info(path)
    print(format_info(info))
    fits = [] if is_url(path) else list_dynamics(path)  # streamed: counted by format_info
    if fits:
        print(f"nwb_dsr fits ({len(fits)}):")
        for f in fits:
            m = f["metrics"]
            print(f"  {f['module']}/{f['name']}: {f['latent_model']} (M={f['latent_dim']}) + "
                  f"{f['observation_model']} on {f['n_channels']} {f['data_kind']} channels of "
                  f"{f['source_object'] or 'an array'}, bin {_fmt(f['bin_size'])} s, "
                  f"tau={f['tau']}, {f['epochs']} epochs; D_stsp={_fmt(m.get('D_stsp'))}, "
                  f"D_H={_fmt(m.get('D_H'))}, lambda_max={_fmt(f['lambda_max'])} 1/s")
    elif not is_url(path):
        print("nwb_dsr fits: none")
    if args.json:
        _emit_json({"command": "info", "file": str(path), "info": info, "fits": fits})
    return 0


#: ``nwb-dsr demo``'s time budget in seconds: a cap, not a schedule; the demo's fit (three
#: ensemble members) ends by its epochs or early stopping in a fraction of it.
DEMO_MAX_TIME = 600.0


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
        # training setting at its default (10-ms bins, tau from the data's lambda_max). The
        # budget is a safety net the fit ends well within (its schedule follows the epochs),
        # so the demo prints the same figures on a busy and on an idle machine.
        sim = dict(n_units=60, duration=300.0, n_lfp_channels=4)
        fit = {}
        max_time, n_lyapunov, bin_size = (args.max_time or DEMO_MAX_TIME), LYAPUNOV_STEPS, 0.01
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
    ens = summary["metrics"].get("ensemble") or {}
    if ens.get("lambda_max", {}).get("n"):
        d = ens["lambda_max"]
        print(f"lambda_max over the {ens['n_members']} ensemble members: median "
              f"{_fmt(d['median'])}, range [{_fmt(d['min'])}, {_fmt(d['max'])}] 1/s")
    print(f"done in {time.perf_counter() - t0:.0f} s. Open {summary['output']} with pynwb or "
          f"pynapple (processing/dynamics/dsr), see the figures in {report}.")
    summary.update({"recording": str(src), "true_lambda_max": truth["lyapunov_max"]})
    if args.json:
        _emit_json(summary)
    return 0


# --------------------------------------------------------------------------------------------
# sweep (nwb_dsr.sweeps on Ray Tune)
# --------------------------------------------------------------------------------------------

def _setting_value(text: str):
    """'10' -> 10, '0.5' -> 0.5, 'true' -> True, 'none' -> None, else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def _setting(text: str):
    """'tau=10,20' -> ('tau', [10, 20]); 'epochs=30' -> ('epochs', 30)."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE or NAME=V1,V2,...; got {text!r}")
    parsed = [_setting_value(v) for v in values.split(",") if v.strip()]
    return name.strip().replace("-", "_"), parsed if len(parsed) > 1 else parsed[0]


def _cmd_sweep(args) -> int:
    from .sweeps import sweep
    if not args.files and args.config is None:
        raise CLIError("give NWB files (paths, glob patterns or URLs) or --config FILE.")
    kwargs = {"config": args.config, "resume": args.resume}
    if args.files:
        kwargs["files"] = list(args.files)
    if args.source or args.bin_size is not None:
        sources = args.source or ["units"]
        if args.bin_size is None:
            kwargs["sources"] = {s: {} for s in sources}
        else:
            kwargs["sources"] = {s: {"bin_size": args.bin_size} if s == "units" else
                                 {"rate": 1.0 / args.bin_size} for s in sources}
    if args.set:
        kwargs["settings"] = dict(args.set)
    for key in ("seeds", "num_samples", "scheduler", "out", "nwb_out", "address", "num_cpus",
                "workers", "cache", "lyapunov_steps"):
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = value
    if args.seed_list is not None:
        kwargs["seeds"] = args.seed_list
    if args.no_write:
        kwargs["write_back"] = False
    if args.progress is not None:
        kwargs["progress"] = None if args.progress == "none" else args.progress
    res = sweep(**kwargs)
    if args.json:
        _emit_json({"command": "sweep", "folder": str(res.folder), "results_csv": str(res.csv),
                    "results_parquet": str(res.parquet), "figure": res.figure,
                    "n_trials": int(len(res.table)),
                    "status": res.table["status"].value_counts().to_dict()
                    if len(res.table) else {},
                    "written": {str(k): str(v) for k, v in res.written.items()},
                    "best": {f"{f}|{s}": t for (f, s), t in res.best.items()},
                    "seconds": res.seconds})
    return 0


def _add_sweep_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="fit many sessions x seeds x settings on Ray Tune",
        description="Run one fit per recording, seed and combination of settings as Ray Tune "
        "trials (Ray starts locally with this machine's cores unless --address names a "
        "cluster). Writes results.csv / results.parquet (one row per trial), summary.png and, "
        "per session, the best fit as a new NWB file into OUT. Options given here override "
        "those of --config.")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="NWB files: paths, glob patterns (quote them) or http(s) URLs")
    p.add_argument("--config", default=None, metavar="SWEEP.yaml",
                   help="search space in a YAML or JSON file (files, sources, settings, seeds, "
                   "scheduler, ...)")
    p.add_argument("--source", action="append", choices=["units", "lfp"], default=None,
                   help="data to fit (repeat for both; default units)")
    p.add_argument("--bin-size", type=_positive_float, default=None, metavar="S",
                   help="bin width in seconds (units: default 0.01; lfp: resample to 1/S Hz)")
    p.add_argument("--set", action="append", type=_setting, default=None,
                   metavar="NAME=V[,V...]",
                   help="a DSR setting: one value is fixed, several are a grid (e.g. "
                   "--set tau=10,20 --set epochs=50); repeat for more")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                       help="number of seeds per setting (0..N-1; default 1)")
    seeds.add_argument("--seed-list", type=_id_list, default=None, metavar="IDS",
                       help="the seeds themselves, e.g. 0,3,5-7")
    p.add_argument("--num-samples", type=_positive_int, default=None, metavar="N",
                   help="repeats of the grid (each draws sampled settings anew; default 1)")
    p.add_argument("--scheduler", choices=["fifo", "asha"], default=None,
                   help="asha stops poor trials early on the validation score (default fifo)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default ./nwb_dsr_sweep)")
    p.add_argument("--nwb-out", default=None, metavar="DIR",
                   help="folder for the written-back best fits (default: OUT)")
    p.add_argument("--no-write", action="store_true", help="do not write best fits back")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep stored in OUT (finished trials are kept)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="join a running Ray cluster (e.g. auto or ray://host:10001)")
    p.add_argument("--num-cpus", type=_positive_int, default=None, metavar="N",
                   help="CPUs of the local Ray (default: all cores)")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="most trials at once (default: one per CPU)")
    p.add_argument("--progress", choices=["lines", "tune", "none"], default=None,
                   help="one line per finished trial (default), Tune's table, or nothing")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="cache the byte ranges of streamed (URL) files in DIR")
    p.add_argument("--lyapunov-steps", type=_positive_int, default=None, metavar="N",
                   help="steps of each trial's Lyapunov-spectrum estimate (default 5000)")
    _add_common(p)
    p.set_defaults(func=_cmd_sweep)


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------

_THREADS_HELP = ("CPU threads for torch (default 1: the small latent models train fastest on one "
                 "thread, and more oversubscribe a busy machine)")


def _add_stored_fit(p):
    p.add_argument("file", metavar="FILE", help="NWB file holding the fit")
    p.add_argument("--name", default=None, help="name of the fit (needed if several)")


def _add_common(p, json_help="print a JSON object as the last line"):
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _cli_settings() -> dict:
    """{flat name: dataclass field} of the settings ``nwb-dsr fit`` exposes."""
    return {k: f for k, (_, f) in DSRConfig.settings().items() if f.metadata.get("cli")}


def _setting_type(name, default):
    if name in ("tau", "batches_per_epoch"):  # 'auto' or a positive integer
        return _tau
    if name == "seed":
        return int
    if isinstance(default, float) or name == "max_time":
        return _positive_float
    if isinstance(default, int) or name in ("latent_dim", "hidden_dim"):
        return _positive_int
    return str


def _add_fit_options(p):
    from .training.forcing import FORCING_SCHEMES
    g = p.add_argument_group("model and training (defaults: nwb_dsr.config.DSRConfig)")
    for name, f in _cli_settings().items():
        choices = f.metadata.get("choices")
        if name == "mode":
            choices = ("auto", *sorted(FORCING_SCHEMES))
        default = f.default
        shown = "none" if default is None else default
        g.add_argument(f"--{name.replace('_', '-')}", type=_setting_type(name, default),
                       default=None, choices=choices, metavar=f.metadata.get("metavar"),
                       help=f"{f.metadata['help']} (default: {shown})")
    g.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                   help=_THREADS_HELP)
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.add_argument("--lyapunov-steps", type=_positive_int, default=LYAPUNOV_STEPS, metavar="N",
                   help=f"steps of the Lyapunov-spectrum estimate (default {LYAPUNOV_STEPS})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nwb-dsr`` (all subcommands).

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from nwb_dsr.cli import build_parser
    >>> args = build_parser().parse_args(["fit", "rec.nwb", "--source", "units", "--tau", "20"])
    >>> args.command, args.source, args.tau, args.epochs  # None: the configuration's default
    ('fit', 'units', 20, None)
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
    p.add_argument("file", metavar="FILE",
                   help="NWB file with the recording, or its http(s) URL")
    p.add_argument("--source", required=True, choices=["units", "lfp"],
                   help="data to fit: spike counts of the Units table, or an LFP series")
    sel = p.add_argument_group("data selection")
    sel.add_argument("--bin-size", type=_positive_float, default=None, metavar="S",
                     help=f"bin width in seconds (units: default {DEFAULT_SPIKE_BIN_SIZE:g}; lfp: "
                     "resample to 1/S Hz, as --rate)")
    sel.add_argument("--units", default=None, metavar="IDS|COLUMN|EXPR",
                     help="units to read (--source units): ids, e.g. 0,3,5-9; a boolean column "
                     "of the Units table; or an expression on it, e.g. \"quality == 'good'\" "
                     "(default: all)")
    sel.add_argument("--channels", type=_id_list, default=None, metavar="IDS",
                     help="LFP channel indices, e.g. 0-3 (default: all)")
    sel.add_argument("--interval", type=float, nargs=2, default=None, metavar=("START", "STOP"),
                     help="time interval in seconds (default: the whole recording)")
    tr = p.add_argument_group(
        "trials (one segment per trial of /intervals/trials; see nwb-dsr info FILE for its "
        "columns)")
    tr.add_argument("--trials", nargs="?", const="all", default=None,
                    metavar="all|ROWS|COLUMN|EXPR",
                    help="read one segment per trial: all trials (--trials alone), row indices "
                    "such as 0-99,120, the rows True in a boolean column, or an expression on "
                    "the trials table such as \"stop_time - start_time > 1\" (default: one "
                    "continuous read)")
    tr.add_argument("--align-to", default=None, metavar="COLUMN",
                    help="trials column of event times to align each window to (needs "
                    "--trial-window)")
    tr.add_argument("--trial-window", type=float, nargs=2, default=None,
                    metavar=("BEFORE", "AFTER"),
                    help="window in seconds around --align-to (or around each start_time), "
                    "e.g. -0.5 1.5 (default: each trial's start_time to stop_time)")
    tr.add_argument("--trial-filter", default=None, metavar="COLUMN|EXPR",
                    help="keep only trials True in a boolean column, or for which an "
                    "expression on the trials table is true, e.g. \"correct\" or "
                    "\"tap2_time - tap1_time < 0.8\"")
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
    _add_stored_fit(p)
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write figures and metrics.json into DIR")
    p.add_argument("--lyapunov-steps", type=_positive_int, default=LYAPUNOV_STEPS, metavar="N",
                   help=f"steps of the Lyapunov-spectrum estimate (default {LYAPUNOV_STEPS})")
    _add_common(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("simulate", help="run a stored model freely and save the trajectory",
                       description="Generate from a stored fit, starting from its stored "
                       "initial state, and save the (steps, channels) array as .npy.")
    _add_stored_fit(p)
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
    p.add_argument("file", metavar="FILE", help="NWB file, or its http(s) URL")
    _add_common(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="simulate a Lorenz-driven recording, fit it, write a report",
                       description="Write a synthetic recording (Poisson units driven by a "
                       "Lorenz-63 latent) into DIR, fit it with progress shown, write the "
                       "result NWB and a report folder with figures and metrics.json.")
    p.add_argument("--out", default="nwb_dsr_demo", metavar="DIR",
                   help="output folder (default ./nwb_dsr_demo)")
    p.add_argument("--max-time", type=_positive_float, default=None, metavar="S",
                   help="training time budget in seconds, a cap the fit normally ends "
                        "within (default 600; 5 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="tiny recording and a few seconds of fitting (for tests)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=_positive_int, default=1, metavar="N", help=_THREADS_HELP)
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_demo)

    _add_sweep_parser(sub)
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
