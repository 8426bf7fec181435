"""Fits over sessions × seeds × settings on Ray Tune: :func:`sweep` and ``nwb-dsr sweep``.

Each trial reads one recording (a path or an http(s) URL, streamed), fits one :class:`~nwb_dsr.DSR`
with one seed and one combination of settings, reports its validation score to Tune whenever the
fit computes one, and at the end evaluates the fit and stores the model as a Tune checkpoint.
A scheduler (ASHA) may stop poor trials early on the same validation number that model selection
inside a fit uses (lower is better); the round at the end of the epoch budget comes with the
final report, so a trial that has finished training is always evaluated and kept. The
experiment is stored under ``<out>/ray``, so an interrupted sweep can be resumed: finished
trials are kept, unfinished ones are run again.

What a sweep leaves in its output folder ``out``:

- ``results.csv`` and ``results.parquet``: one row per trial (file, source, seed, settings,
  every metric, times, status);
- per session, the best finished fit (lowest validation score) written back as a new NWB file
  ``<stem>_dsr.nwb`` (in ``out`` or in ``nwb_out``);
- ``summary.png``: validation score against each swept setting, one row of panels per session;
- ``trials.jsonl``: one line per finished trial, written as trials finish.

Each trial is a single fit (``ensemble=1``, unless the settings say otherwise): the seeds of the
sweep play the part of :class:`~nwb_dsr.DSR`'s ensemble, each one a row of the table.

Ray starts locally with the machine's cores unless ``address`` names a running cluster; each
trial uses one CPU and one torch thread.

The search space is given in Python or in a YAML/JSON file (:func:`load_config`)::

    files: ["recordings/*.nwb", "https://dandiarchive.org/api/assets/<id>/download/"]
    sources:                # data to fit, with keyword arguments of the reader
      units: {bin_size: 0.02}
    settings:               # DSR settings: a value is fixed, a list is a grid,
      tau: [10, 20]         # {distribution: arguments} is sampled num_samples times
      latent_dim: 3
      lr: {loguniform: [0.001, 0.01]}
      epochs: 30
    seeds: 4                # or a list of seeds
    scheduler: asha         # or fifo, or {asha: {grace_period: 2, reduction_factor: 2}}
"""
from __future__ import annotations

import glob
import inspect
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._json import jsonable
from .io.remote import is_url, local_copy, url_name

__all__ = ["sweep", "load_config", "SweepResult", "SweepError", "DISTRIBUTIONS"]

#: Distributions a setting may be sampled from in a configuration file ({name: arguments}).
DISTRIBUTIONS = ("uniform", "loguniform", "quniform", "qloguniform", "randint", "lograndint",
                 "choice", "randn")
SOURCES = ("units", "lfp")
#: Keys of a configuration file (those of :func:`sweep` that it may set).
CONFIG_KEYS = ("files", "sources", "settings", "seeds", "num_samples", "scheduler", "out",
               "nwb_out", "fit_name", "write_back", "lyapunov_steps", "workers", "num_cpus",
               "address", "cache", "progress")
#: Metrics of :func:`nwb_dsr.evaluate` copied into the results table (``tau`` is renamed
#: ``fitted_tau``: the forcing interval in bins the fit used).
_EVAL_KEYS = ("dstsp", "dh", "lambda_max_per_s", "lambda_max_per_bin", "lyapunov_sum_per_s",
              "tau_pred_bins", "tau_pred_s", "bits_per_spike_1step", "poisson_loglik_per_bin",
              "n_bins")
_EXPERIMENT = "sweep"
MODEL_FILE = "model.npz"
METRICS_FILE = "metrics.json"
FINAL_FILE = "result.json"


class SweepError(ValueError):
    """A sweep that cannot start as asked (bad file list, unknown setting, bad option)."""


@dataclass
class SweepResult:
    """What :func:`sweep` produced.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per trial (also written as ``results.csv`` and ``results.parquet``).
    folder : pathlib.Path
        The output folder.
    written : dict
        ``{file: path of the NWB file written with the session's best fit}``.
    best : dict
        ``{(file, source): trial_id of the best finished trial}``.
    figure : pathlib.Path or None
        The summary figure.
    seconds : float
        Wall time of the sweep.
    """

    table: object
    folder: Path
    written: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    figure: Path | None = None
    seconds: float = 0.0

    @property
    def csv(self) -> Path:
        return self.folder / "results.csv"

    @property
    def parquet(self) -> Path:
        return self.folder / "results.parquet"


# ---------------------------------------------------------------------------------------------
# the search space
# ---------------------------------------------------------------------------------------------

def load_config(path) -> dict:
    """Read a sweep configuration from a YAML (``.yaml``/``.yml``) or JSON file.

    Relative file patterns and output folders in it are taken relative to the configuration
    file's folder.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict
        Keyword arguments of :func:`sweep`.

    Raises
    ------
    SweepError
        If the file is missing, cannot be parsed, is not a mapping, or has unknown keys.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sweep.json"
    >>> _ = p.write_text(json.dumps({"files": ["a.nwb"], "settings": {"tau": [5, 10]}}))
    >>> cfg = load_config(p)
    >>> cfg["settings"], cfg["files"][0].endswith("a.nwb")
    ({'tau': [5, 10]}, True)
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise SweepError(f"no sweep configuration file at {path}; give the path of a YAML or "
                         "JSON file.")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            cfg = json.loads(text)
        else:
            import yaml
            cfg = yaml.safe_load(text)
    except Exception as err:
        raise SweepError(f"cannot parse the sweep configuration {path} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); check its "
                         "syntax.") from err
    if not isinstance(cfg, dict):
        raise SweepError(f"the sweep configuration {path} must be a mapping of keys such as "
                         f"files, sources, settings, seeds; got {type(cfg).__name__}.")
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise SweepError(f"unknown key(s) {unknown} in the sweep configuration {path}; valid "
                         f"keys are {list(CONFIG_KEYS)}.")
    base = path.resolve().parent
    if "files" in cfg:
        files = cfg["files"] if isinstance(cfg["files"], list) else [cfg["files"]]
        cfg["files"] = [f if is_url(str(f)) or os.path.isabs(os.path.expanduser(str(f)))
                        else str(base / str(f)) for f in files]
    for key in ("out", "nwb_out", "cache"):
        if cfg.get(key) is not None and not os.path.isabs(os.path.expanduser(str(cfg[key]))):
            cfg[key] = str(base / str(cfg[key]))
    return cfg


def expand_files(files) -> list:
    """Paths (made absolute) and URLs of the recordings; glob patterns are expanded.

    Raises
    ------
    SweepError
        For no files, a missing file, or a pattern that matches nothing.

    Examples
    --------
    >>> expand_files(["https://example.org/a.nwb"])
    ['https://example.org/a.nwb']
    """
    if files is None or isinstance(files, (str, os.PathLike)):
        files = [] if files is None else [files]
    out = []
    for item in files:
        text = str(item)
        if is_url(text):
            out.append(text)
            continue
        text = os.path.expanduser(text)
        if glob.has_magic(text):
            matches = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not matches:
                raise SweepError(f"the pattern {text!r} matches no file; check the folder and "
                                 "the pattern (e.g. 'recordings/*.nwb').")
            out.extend(str(Path(p).resolve()) for p in matches)
        elif not os.path.isfile(text):
            raise SweepError(f"no file at {text}; give existing NWB files, glob patterns or "
                             "http(s) URLs.")
        else:
            out.append(str(Path(text).resolve()))
    if not out:
        raise SweepError("no recordings given; pass files (paths, glob patterns or URLs).")
    return list(dict.fromkeys(out))


def _reader_options(sources) -> dict:
    """``{source: reader keyword arguments}`` from a name, a list of names or a mapping."""
    from .io import read_lfp, read_units
    if isinstance(sources, str):
        sources = [sources]
    if isinstance(sources, (list, tuple)):
        sources = {s: {} for s in sources}
    if not isinstance(sources, dict) or not sources:
        raise SweepError(f"sources must be 'units', 'lfp', a list of them, or a mapping "
                         f"{{source: reader options}}; got {sources!r}.")
    out = {}
    for name, opts in sources.items():
        if name not in SOURCES:
            raise SweepError(f"unknown source {name!r}; sources are {list(SOURCES)}.")
        opts = dict(opts or {})
        reader = read_units if name == "units" else read_lfp
        valid = [p for p in inspect.signature(reader).parameters if p != "source"]
        bad = sorted(set(opts) - set(valid))
        if bad:
            raise SweepError(f"unknown option(s) {bad} for the {name} reader; valid ones are "
                             f"{valid} (see nwb_dsr.{reader.__name__}).")
        out[name] = opts
    return out


def _setting_names() -> list:
    from .estimator import DSR
    return sorted(set(DSR().get_params()) - {"seed", "progress"}) + ["bin_size"]


def _is_tune_object(value) -> bool:
    if isinstance(value, dict) and set(value) == {"grid_search"}:
        return True
    return type(value).__module__.startswith("ray.tune")


def _search_value(name, value):
    """A setting's value in Tune's param space: fixed, grid (list) or a distribution."""
    from ray import tune
    if _is_tune_object(value):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise SweepError(f"setting {name!r} has an empty list of values; give at least one.")
        return tune.grid_search(list(value))
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            raise SweepError(f"setting {name!r}: a mapping must name one distribution, e.g. "
                             f"{{loguniform: [0.001, 0.01]}}; distributions are "
                             f"{list(DISTRIBUTIONS)}.")
        dist, args = next(iter(value.items()))
        if dist == "choice":
            return tune.choice(list(args))
        args = list(args) if isinstance(args, (list, tuple)) else [args]
        try:
            return getattr(tune, dist)(*args)
        except Exception as err:
            raise SweepError(f"setting {name!r}: bad arguments {args} for {dist} "
                             f"({err}).") from err
    return value


def _param_space(files, sources, settings, seeds) -> dict:
    from ray import tune
    settings = dict(settings or {})
    names = _setting_names()
    bad = sorted(set(settings) - set(names))
    if "seed" in bad:
        raise SweepError("give seeds with the seeds argument (a number of seeds or a list), "
                         "not as a setting.")
    if bad:
        raise SweepError(f"unknown setting(s) {bad}; valid settings are the DSR parameters and "
                         f"bin_size: {names}.")
    return {"file": tune.grid_search(list(files)), "source": tune.grid_search(list(sources)),
            "seed": tune.grid_search(list(seeds)),
            "settings": {k: _search_value(k, v) for k, v in settings.items()}}


def _seeds(seeds) -> list:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SweepError(f"seeds must be a positive number of seeds or a list; got {seeds}.")
        return list(range(int(seeds)))
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise SweepError(f"seeds must be a number of seeds or a list of integers; got "
                         f"{seeds!r}.") from None
    if not out:
        raise SweepError("seeds is an empty list; give at least one seed.")
    return list(dict.fromkeys(out))


def _max_rounds(settings) -> int:
    """The most validation rounds a trial can report (ASHA's max_t)."""
    from .estimator import DSR
    from .training.trainer import AUTO_EVAL_EVERY
    defaults = DSR().get_params()

    def values(name):
        v = (settings or {}).get(name, defaults[name])
        if isinstance(v, (list, tuple)):
            return list(v)
        if isinstance(v, dict) and "grid_search" in v:
            return list(v["grid_search"])
        return [v]
    epochs = [e for e in values("epochs") if isinstance(e, (int, np.integer))]
    # "auto" validates every AUTO_EVAL_EVERY epochs at the most often
    every = [AUTO_EVAL_EVERY if e == "auto" else e for e in values("eval_every")]
    every = [e for e in every if isinstance(e, (int, np.integer)) and e > 0]
    if not epochs or not every:
        return 100
    # one report per validation round, one more when the fit ends (and a spare round)
    return int(max(epochs) // min(every) + 2)


def _scheduler(scheduler, settings):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
    if scheduler is None:
        return FIFOScheduler()
    if isinstance(scheduler, TrialScheduler):
        return scheduler
    opts = {}
    if isinstance(scheduler, dict):
        if len(scheduler) != 1:
            raise SweepError(f"scheduler must name one scheduler, e.g. {{asha: {{grace_period: "
                             f"2}}}}; got {scheduler!r}.")
        scheduler, opts = next(iter(scheduler.items()))
        opts = dict(opts or {})
    if scheduler == "fifo":
        return FIFOScheduler()
    if scheduler == "asha":
        kw = {"grace_period": 1, "reduction_factor": 2, "max_t": _max_rounds(settings)}
        bad = sorted(set(opts) - set(kw) - {"brackets"})
        if bad:
            raise SweepError(f"unknown ASHA option(s) {bad}; valid: grace_period, "
                             "reduction_factor, max_t, brackets.")
        kw.update(opts)
        return ASHAScheduler(metric="val_score", mode="min", time_attr="training_iteration",
                             **kw)
    raise SweepError(f"unknown scheduler {scheduler!r}; use 'fifo' (run every trial to the end), "
                     "'asha' (stop poor trials early), or pass a ray.tune scheduler.")


# ---------------------------------------------------------------------------------------------
# one trial (runs in a Ray worker)
# ---------------------------------------------------------------------------------------------

def _validation_scores(trainer) -> list:
    """The fit's validation scores so far (lower is better), the number model selection uses.

    The one place that reads them from the trainer.
    """
    return [float(v) for v in trainer.history.val_score]


def _read(file, source, options=None, bin_size=None):
    """Observations of one recording as a trial reads them (``bin_size`` overrides options)."""
    from .io import read_source
    kw = dict(options or {})
    if bin_size is not None:
        kw["bin_size"] = bin_size
    return read_source(file, source, **kw)


def _flat_metrics(metrics: dict) -> dict:
    out = {k: metrics.get(k) for k in _EVAL_KEYS if k in metrics}
    for n, v in (metrics.get("prediction_error") or {}).items():
        out[f"pe_{n}"] = v
    if "tau" in metrics:
        out["fitted_tau"] = metrics["tau"]
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in out.items()}


def _run_trial(config, spec):
    """Tune's trainable: read, fit with progress reports, evaluate, checkpoint the model."""
    import torch
    from ray import tune

    from .analysis import evaluate
    from .estimator import DSR

    previous = tune.get_checkpoint()
    if previous is not None:  # resumed after the fit had finished: report it, do not refit
        with previous.as_directory() as folder:
            final = Path(folder) / FINAL_FILE
            if final.is_file():
                tune.report(json.loads(final.read_text()))
                return
    started = time.time()
    torch.set_num_threads(int(spec.get("threads", 1)))
    settings = dict(config["settings"])
    bin_size = settings.pop("bin_size", None)
    obs = _read(config["file"], config["source"], spec["readers"][config["source"]],
                      bin_size)
    # the sweep's seeds are its ensemble: each trial is one fit unless ``ensemble`` is swept
    est = DSR(**{"progress": False, "ensemble": 1, **settings, "seed": int(config["seed"])})
    seen = {"n": 0, "trainer": None}

    def report(trainer, epoch, seconds):
        seen["trainer"] = trainer
        scores = _validation_scores(trainer)
        budget = trainer.optimization.epochs
        if budget is not None and epoch >= budget:
            return  # the last round comes with the final report: a scheduler stopping the
            # trial on it would lose a fit that has finished training
        if len(scores) > seen["n"]:
            seen["n"] = len(scores)
            loss = trainer.history.loss[-1] if trainer.history.loss else None
            tune.report({"val_score": min(scores), "val_score_last": scores[-1],
                         "epoch": int(epoch), "loss": loss, "train_seconds": float(seconds),
                         "started_at": started, "finished": False})

    est.fit(obs, callback=report)
    scores = _validation_scores(seen["trainer"]) if seen["trainer"] is not None else []
    metrics = evaluate(est, obs, n_lyapunov=int(spec["lyapunov_steps"]),
                       seed=int(config["seed"]))
    h = est.history_
    final = {"val_score": min(scores) if scores else float("nan"),
             "val_score_last": scores[-1] if scores else float("nan"),
             "epoch": int(h.epochs), "loss": h.loss[-1] if h.loss else None,
             "train_seconds": float(h.seconds), "stopped": h.stopped or "",
             "best_epoch": h.best_epoch, "started_at": started, "finished": True,
             **_flat_metrics(metrics)}
    with tempfile.TemporaryDirectory() as tmp:
        est.save(Path(tmp) / MODEL_FILE)
        (Path(tmp) / METRICS_FILE).write_text(json.dumps(metrics))
        (Path(tmp) / FINAL_FILE).write_text(json.dumps(final))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))


# ---------------------------------------------------------------------------------------------
# progress and the results table
# ---------------------------------------------------------------------------------------------

def _short(file) -> str:
    return url_name(file) if is_url(file) else Path(file).name


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _line_printer(folder: Path, n_total: int, swept: list):
    """A Tune callback printing one line per finished trial and appending it to trials.jsonl."""
    from ray.tune import Callback

    class LinePrinter(Callback):
        def __init__(self):
            self.done = 0

        def _line(self, trial, status, error=None):
            self.done += 1
            r = dict(trial.last_result or {})
            cfg = trial.config
            sets = " ".join(f"{k}={_fmt(v)}" for k, v in sorted(cfg["settings"].items())
                            if k in swept)
            what = (f"val={_fmt(r.get('val_score'))} D_stsp={_fmt(r.get('dstsp'))} "
                    f"epochs={_fmt(r.get('epoch'))} {_fmt(r.get('time_total_s'))} s"
                    if error is None else f"error: {error}")
            print(f"[{self.done}/{n_total}] {_short(cfg['file'])} {cfg['source']} "
                  f"seed={cfg['seed']} {sets} {status}: {what}".replace("  ", " "),
                  flush=True)
            row = {"trial_id": trial.trial_id, "file": cfg["file"], "source": cfg["source"],
                   "seed": cfg["seed"], "settings": cfg["settings"], "status": status,
                   "finished_at": time.time(), **{k: v for k, v in r.items()
                                                   if k in _ROW_METRICS}}
            with open(folder / "trials.jsonl", "a") as fh:
                fh.write(json.dumps(jsonable(row)) + "\n")

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result or {}
            self._line(trial, "finished" if r.get("finished") else "stopped early")

        def on_trial_error(self, iteration, trials, trial, **info):
            err = getattr(trial, "error_message", None) or "see the Ray log"
            self._line(trial, "error", error=str(err).strip().splitlines()[-1][:200])

    return LinePrinter()


_ROW_METRICS = ("val_score", "val_score_last", "epoch", "loss", "best_epoch", "stopped",
                "fitted_tau", *_EVAL_KEYS, "train_seconds", "time_total_s", "started_at", "pid")


def _error_line(err) -> str:
    text = str(err).strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]


def _table(results, setting_names):
    """One row per trial from Tune's ResultGrid."""
    import pandas as pd
    rows = []
    for r in results:
        cfg, m = r.config or {}, dict(r.metrics or {})
        row = {"trial_id": m.get("trial_id") or Path(r.path).name.rsplit("_", 1)[-1],
               "session": _short(cfg.get("file", "")), "file": cfg.get("file"),
               "source": cfg.get("source"), "seed": cfg.get("seed")}
        for name in setting_names:
            row[name] = (cfg.get("settings") or {}).get(name)
        if r.error is not None:
            status = "error"
        elif m.get("finished"):
            status = "finished"
        else:
            status = "stopped early" if m else "not run"
        row["status"] = status
        for key in ("val_score", "val_score_last", "epoch", "loss", "best_epoch", "stopped",
                    "fitted_tau"):
            row[key] = m.get(key)
        for key in sorted(k for k in m if k.startswith("pe_")):
            row[key] = m[key]
        for key in _EVAL_KEYS:
            row[key] = m.get(key)
        row["train_seconds"] = m.get("train_seconds")
        row["time_s"] = m.get("time_total_s")
        row["started_at"] = m.get("started_at")
        row["pid"] = m.get("pid")
        row["error"] = _error_line(r.error) if r.error is not None else None
        row["checkpoint"] = r.checkpoint.path if (r.checkpoint is not None and status ==
                                                  "finished") else None
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values(["session", "file", "source", "seed", "trial_id"],
                            kind="stable").reset_index(drop=True)
    df["best"] = False
    df["output"] = None
    return df


def _write_table(df, folder: Path) -> None:
    df.to_csv(folder / "results.csv", index=False)
    pq = df.copy()
    for col in pq.columns:  # Parquet columns need one type each
        if pq[col].dtype == object:
            kinds = {type(v) for v in pq[col] if v is not None and not (
                isinstance(v, float) and math.isnan(v))}
            if len(kinds) > 1 or (kinds and not kinds <= {str, int, float, bool}):
                pq[col] = [None if v is None else str(v) for v in pq[col]]
    pq.to_parquet(folder / "results.parquet", index=False)


def _summary_figure(df, setting_names, path: Path):
    """Validation score (and D_stsp) against each swept setting, one row per session."""
    import matplotlib
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = df[df["val_score"].notna()] if len(df) else df
    swept = [n for n in setting_names
             if ok[n].astype(str).nunique() > 1] if len(ok) else []
    xs = swept or ["seed"]
    sessions = list(dict.fromkeys(ok["session"])) if len(ok) else []
    if not sessions:
        return None
    fig, axes = plt.subplots(len(sessions), len(xs), squeeze=False,
                             figsize=(3.6 * len(xs) + 0.6, 2.8 * len(sessions) + 0.4))
    for i, session in enumerate(sessions):
        sub = ok[ok["session"] == session]
        for j, x in enumerate(xs):
            ax = axes[i][j]
            values = list(dict.fromkeys(sorted(sub[x].tolist(), key=lambda v: (str(type(v)), v))))
            pos = {v: k for k, v in enumerate(values)}
            numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                          for v in values)
            xv = sub[x].astype(float) if numeric else sub[x].map(pos)
            finished = sub["status"] == "finished"
            ax.scatter(xv[finished], sub["val_score"][finished], s=18, color="C0",
                       label="finished")
            if (~finished).any():
                ax.scatter(xv[~finished], sub["val_score"][~finished], s=18, color="C3",
                           marker="x", label="stopped early")
            means = sub.groupby(x)["val_score"].mean()
            mx = means.index.astype(float) if numeric else [pos[v] for v in means.index]
            order = np.argsort(np.asarray(mx, dtype=float))
            ax.plot(np.asarray(mx, dtype=float)[order], means.to_numpy()[order], color="C0",
                    lw=1, alpha=0.7)
            if not numeric:
                ax.set_xticks(range(len(values)), [str(v) for v in values])
            ax.set_xlabel(x)
            if j == 0:
                ax.set_ylabel(f"{session}\nvalidation score")
            if i == 0 and j == 0:
                ax.legend(fontsize=7, frameon=False)
    fig.suptitle("nwb_dsr sweep: validation score (lower is better) per trial; line: mean "
                 "over seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _output_names(files, folder: Path, suffix: str) -> dict:
    """``{file: output path}``, stems made unique."""
    out, used = {}, set()
    for f in files:
        stem = Path(_short(f)).stem
        name, k = f"{stem}{suffix}.nwb", 2
        while name in used:
            name, k = f"{stem}_{k}{suffix}.nwb", k + 1
        used.add(name)
        out[f] = folder / name
    return out


def _write_session(file, rows, readers, folder: Path, target: Path, fit_name: str) -> dict:
    """Write one session's best finished fit per source into ``target``; the trial ids used.

    ``rows`` holds the session's finished trials (records of the results table).
    """
    import pandas as pd

    from .estimator import DSR
    from .nwb import write_dynamics
    sub = pd.DataFrame.from_records(rows)
    sources = list(dict.fromkeys(sub["source"]))
    best = {}
    with local_copy(file, folder) as local:
        for k, source in enumerate(sources):
            row = sub[sub["source"] == source].sort_values("val_score").iloc[0]
            ckpt = Path(row["checkpoint"])
            est = DSR.load(ckpt / MODEL_FILE)
            metrics = json.loads((ckpt / METRICS_FILE).read_text())
            bin_size = row["bin_size"] if "bin_size" in row.index else None
            obs = _read(file, source, readers.get(source),
                        None if bin_size is None or (isinstance(bin_size, float) and
                                                     math.isnan(bin_size)) else float(bin_size))
            name = fit_name if len(sources) == 1 else f"{fit_name}_{source}"
            if k == 0:
                write_dynamics(local, est, obs, name=name, out=target, overwrite=True,
                               metrics=metrics)
            else:
                write_dynamics(target, est, obs, name=name, in_place=True, overwrite=True,
                               metrics=metrics)
            best[source] = row["trial_id"]
    return best


def _write_best(df, readers, folder: Path, fit_name: str) -> tuple[dict, dict]:
    """Write each session's best finished fit into a new NWB file; mark it in the table.

    The files are written by this (the driver's) process, so they land in ``folder`` on this
    machine also when the trials ran on the nodes of a cluster; a session costs a fraction of a
    second once the modules are loaded. :func:`sweep` runs this in a thread while Ray shuts
    down.
    """
    done = df[(df["status"] == "finished") & df["checkpoint"].notna() & df["val_score"].notna()]
    files = list(dict.fromkeys(df["file"]))
    targets = _output_names(files, folder, "_dsr")
    chosen = {}
    for file in files:
        sub = done[done["file"] == file]
        if not len(sub):
            print(f"{_short(file)}: no finished trial, nothing written back")
            continue
        chosen[file] = _write_session(file, sub.to_dict("records"), readers, folder,
                                      targets[file], fit_name)
    written, best = {}, {}
    for file, per_source in chosen.items():
        for source, trial_id in per_source.items():
            idx = df.index[df["trial_id"] == trial_id]
            df.loc[idx, "best"] = True
            df.loc[idx, "output"] = str(targets[file])
            best[(file, source)] = trial_id
        written[file] = targets[file]
    return written, best


# ---------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------

def _ray_init(address, num_cpus):
    import ray
    if ray.is_initialized():
        return False
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "TQDM_DISABLE": "1"}
    if address is None and os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # workers import this nwb_dsr
    kwargs = {"runtime_env": {"env_vars": env}, "log_to_driver": False,
              "include_dashboard": False, "configure_logging": True, "logging_level": "ERROR"}
    if address is not None:
        ray.init(address=address, **kwargs)
    else:
        # Ray's session folder holds Unix sockets, whose paths may not exceed 107 bytes: a long
        # TMPDIR (pytest, macOS) breaks them, so use /tmp then
        if "RAY_TMPDIR" not in os.environ and len(tempfile.gettempdir()) > 40 and \
                os.path.isdir("/tmp"):
            os.environ["RAY_TMPDIR"] = "/tmp"
        ray.init(num_cpus=int(num_cpus or os.cpu_count() or 1), **kwargs)
    return True


def sweep(files=None, *, config=None, sources="units", settings=None, seeds=1,
          num_samples: int = 1, scheduler="fifo", out="nwb_dsr_sweep", nwb_out=None,
          fit_name: str = "dsr", write_back: bool = True, lyapunov_steps: int = 5000,
          address=None, num_cpus=None, workers=None, resume: bool = False, progress="lines",
          cache=None) -> SweepResult:
    """Fit every recording × seed × setting combination as one Ray Tune trial.

    Parameters
    ----------
    files : str, path-like or list, optional
        Recordings: NWB file paths, glob patterns (``"data/*.nwb"``) or http(s) URLs (streamed
        with range requests).
    config : str, path-like or dict, optional
        A configuration file (YAML/JSON, see :func:`load_config`) or mapping; keyword
        arguments given here take precedence over it.
    sources : str, list or dict, default "units"
        What to fit: ``"units"`` (spike counts), ``"lfp"``, both, or ``{source: options}``
        with keyword arguments of :func:`~nwb_dsr.read_units` / :func:`~nwb_dsr.read_lfp`
        (e.g. ``{"units": {"bin_size": 0.02, "units": [0, 1, 2]}}``).
    settings : dict, optional
        :class:`~nwb_dsr.DSR` parameters (and ``bin_size``): a value is fixed, a list is a grid,
        a ``ray.tune`` search object or ``{distribution: arguments}`` (one of
        :data:`DISTRIBUTIONS`) is sampled ``num_samples`` times.
    seeds : int or list of int, default 1
        A number of seeds (0, 1, ...) or the seeds themselves.
    num_samples : int, default 1
        Tune's number of samples: repeats of the grid, each drawing the sampled settings anew.
    scheduler : {"fifo", "asha"}, dict, ray.tune scheduler or None
        ``"asha"`` stops poor trials early on the validation score (``{"asha": {"grace_period":
        2, "reduction_factor": 2, "max_t": ...}}`` sets its options; ``max_t`` defaults to the
        most validation rounds a trial can have).
    out : str or path-like, default "nwb_dsr_sweep"
        Output folder: results table, summary figure, written-back fits, and the Tune
        experiment (``out/ray``).
    nwb_out : str or path-like, optional
        Folder for the written-back NWB files (default: ``out``).
    fit_name : str, default "dsr"
        Name of the fit in the written files (``dsr_units`` / ``dsr_lfp`` with two sources).
    write_back : bool, default True
        Write each session's best fit back into a new NWB file.
    lyapunov_steps : int, default 5000
        Steps of each trial's Lyapunov-spectrum estimate in :func:`~nwb_dsr.evaluate`.
    address : str, optional
        Address of a running Ray cluster (``"auto"``, ``"ray://host:10001"``, ...); default:
        start Ray on this machine. An already initialised Ray is used as it is.
    num_cpus : int, optional
        CPUs of a locally started Ray (default: all cores).
    workers : int, optional
        Most trials running at once (default: as many as Ray has CPUs).
    resume : bool, default False
        Continue the sweep stored in ``out``: finished trials are kept, unfinished or errored
        ones run again. Without a stored sweep, a new one starts.
    progress : {"lines", "tune", None}, default "lines"
        One line per finished trial, Tune's own progress table, or nothing.
    cache : str or path-like, optional
        Folder caching the byte ranges of streamed (URL) files.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        For no or missing files, a pattern matching nothing, an unknown source, reader option,
        setting or scheduler, a folder already holding a sweep (without ``resume``), or when
        Ray Tune is not installed.
    RemoteFileError
        When a URL cannot be streamed (checked before the sweep starts).

    Examples
    --------
    >>> import nwb_dsr
    >>> res = nwb_dsr.sweep(["rec1.nwb", "rec2.nwb"], settings={"tau": [10, 20],
    ...                     "epochs": 20}, seeds=4, out="sweep_out")  # doctest: +SKIP
    >>> res.table.groupby(["session", "tau"])["val_score"].mean()  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    given = {"files": files, "sources": sources, "settings": settings, "seeds": seeds,
             "num_samples": num_samples, "scheduler": scheduler, "out": out,
             "nwb_out": nwb_out, "fit_name": fit_name, "write_back": write_back,
             "lyapunov_steps": lyapunov_steps, "address": address, "num_cpus": num_cpus,
             "workers": workers, "progress": progress, "cache": cache}
    if config is not None:
        cfg = dict(config) if isinstance(config, dict) else load_config(config)
        unknown = sorted(set(cfg) - set(CONFIG_KEYS))
        if unknown:
            raise SweepError(f"unknown configuration key(s) {unknown}; valid keys are "
                             f"{list(CONFIG_KEYS)}.")
        defaults = {k: p.default for k, p in inspect.signature(sweep).parameters.items()}
        for key, value in cfg.items():  # arguments given explicitly win over the file
            if key == "settings" and given[key] and isinstance(value, dict):
                given[key] = {**value, **given[key]}
            elif given[key] is None or given[key] == defaults.get(key):
                given[key] = value
    try:
        from ray import tune
    except ImportError as err:
        raise SweepError("nwb_dsr.sweep runs on Ray Tune, which is not installed; install it "
                         "with `pip install 'nwb_dsr[distributed]'` (or 'ray[tune]').") from err
    if given["progress"] not in ("lines", "tune", None):
        raise SweepError(f"progress must be 'lines', 'tune' or None; got {given['progress']!r}.")
    file_list = expand_files(given["files"])
    readers = _reader_options(given["sources"])
    seed_list = _seeds(given["seeds"])
    n_samples = int(given["num_samples"])
    if n_samples < 1:
        raise SweepError(f"num_samples must be at least 1; got {n_samples}.")
    param_space = _param_space(file_list, list(readers), given["settings"], seed_list)
    sched = _scheduler(given["scheduler"], given["settings"])
    if given["cache"] is not None:
        from .io.remote import set_cache
        set_cache(given["cache"])
    from .io.remote import remote_size
    for f in file_list:  # one clear error before any trial starts
        if is_url(f):
            remote_size(f)

    folder = Path(given["out"]).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    storage = folder / "ray"
    exp_dir = storage / _EXPERIMENT
    restorable = exp_dir.is_dir() and tune.Tuner.can_restore(str(exp_dir))
    if restorable and not resume:
        raise SweepError(f"{folder} already holds a sweep; resume it (resume=True, "
                         "`--resume`) or give another output folder.")
    nwb_folder = folder if given["nwb_out"] is None else Path(given["nwb_out"]).expanduser()
    nwb_folder.mkdir(parents=True, exist_ok=True)
    setting_names = sorted((given["settings"] or {}).keys())

    n_grid = len(file_list) * len(readers) * len(seed_list) * n_samples
    for v in param_space["settings"].values():
        if isinstance(v, dict) and "grid_search" in v:
            n_grid *= len(v["grid_search"])
    spec = {"readers": readers, "lyapunov_steps": int(given["lyapunov_steps"]), "threads": 1}
    trainable = tune.with_resources(tune.with_parameters(_run_trial, spec=spec), {"cpu": 1})
    swept = [k for k, v in param_space["settings"].items() if _is_tune_object(v)]
    callbacks = ([_line_printer(folder, n_grid, swept)] if given["progress"] == "lines"
                 else [])
    if given["progress"] != "tune":  # no Tune tables besides the progress lines
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = _ray_init(given["address"], given["num_cpus"])
    writer = written_back = None
    try:
        import ray
        n_workers = given["workers"]
        if n_workers is None:
            n_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        run_config = tune.RunConfig(
            name=_EXPERIMENT, storage_path=str(storage), callbacks=callbacks,
            verbose=1 if given["progress"] == "tune" else 0,
            # num_to_keep makes Tune save the experiment state whenever a trial stores its
            # final checkpoint, so a killed sweep knows every fit that had finished
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0))
        if restorable:
            print(f"resuming the sweep in {folder}", flush=True)
            tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable,
                                       resume_unfinished=True, resume_errored=False,
                                       restart_errored=True)
        else:
            tune_config = tune.TuneConfig(
                scheduler=sched, num_samples=n_samples, max_concurrent_trials=int(n_workers),
                reuse_actors=True, trial_dirname_creator=lambda t: f"trial_{t.trial_id}")
            tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                               run_config=run_config)
        results = tuner.fit()
        df = _table(results, setting_names)
        if given["write_back"] and len(df):  # written while Ray shuts down
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nwb_dsr-write")
            written_back = writer.submit(_write_best, df, readers, nwb_folder,
                                         given["fit_name"])
    finally:
        if started:
            import ray
            ray.shutdown()
        if writer is not None:
            writer.shutdown(wait=True)
    written, best, failed = {}, {}, None
    if written_back is not None:
        try:
            written, best = written_back.result()
        except Exception as err:  # the trials' results are kept all the same
            failed = err

    _write_table(df, folder)
    figure = _summary_figure(df, setting_names, folder / "summary.png")
    if failed is not None:
        print(f"sweep: the results of {len(df)} trials are in {folder / 'results.csv'}, but "
              "writing the best fits back failed (see the error below).", flush=True)
        raise failed
    seconds = time.perf_counter() - t0
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print(f"sweep: {len(df)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}) in "
          f"{seconds:.0f} s; results: {folder / 'results.csv'} and results.parquet"
          + (f"; figure: {figure}" if figure else ""), flush=True)
    for file, target in written.items():
        print(f"best fit of {_short(file)} written to {target}", flush=True)
    return SweepResult(table=df, folder=folder, written=written, best=best, figure=figure,
                       seconds=seconds)

