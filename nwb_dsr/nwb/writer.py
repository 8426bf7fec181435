"""Write fitted dynamics into NWB files: :func:`write_dynamics` and :func:`build_dynamics`.

Writing never corrupts or loses the user's data. By default the result is a new file: the
source is copied byte for byte to a temporary file next to the output, the processing module is
appended to the copy with pynwb, the copy is flushed to disk and renamed onto the output path
(``os.replace``, atomic on POSIX and Windows). The source is only ever opened read-only. With
``in_place=True`` the same procedure runs with the source itself as the output, so the source is
replaced atomically by its extended copy; a failure at any step removes the temporary file and
leaves every existing file as it was.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path

import h5py
import numpy as np
from sklearn.utils.validation import check_is_fitted

from . import (NAMESPACE, DynamicalSystemModel, GeneratedTrajectory, LatentTrajectory,
               ModelParameter, ModelParameters, PredictedMean)
from .._json import jsonable as _jsonable
from ..observations import as_observations

__all__ = ["write_dynamics", "build_dynamics", "check_output", "default_output_path",
           "MODULE_NAME", "MODULE_DESCRIPTION"]

#: Name of the processing module that holds the fits.
MODULE_NAME = "dynamics"
MODULE_DESCRIPTION = (
    "Dynamical-systems reconstructions fitted with nwb_dsr (NWB extension ndx-dsr): one "
    "DynamicalSystemModel per fit, holding the model's parameters and hyper-parameters, its "
    "training record, metrics and Lyapunov spectrum, a link to the data it was fitted to, and "
    "its latent, generated and predicted trajectories.")

# evaluate()'s keys -> (row name in the metrics table, unit); other numeric entries keep their
# (flattened) key and get no unit
_METRIC_NAMES = {
    "dstsp": ("D_stsp", ""),
    "dh": ("D_H", ""),
    "lambda_max_per_s": ("lambda_max", "1/s"),
    "lambda_max_per_bin": ("lambda_max_per_bin", "1/bin"),
    "lyapunov_sum_per_s": ("lyapunov_sum", "1/s"),
    "tau_pred_bins": ("tau_pred", "bins"),
    "tau_pred_s": ("tau_pred_s", "s"),
    "bits_per_spike_1step": ("bits_per_spike_1step", "bits/spike"),
    "co_bps": ("co_bps", "bits/spike"),
    "poisson_loglik_per_bin": ("poisson_loglik_per_bin", "nats/bin"),
    "n_generate": ("n_generate", "bins"),
    "n_bins": ("n_bins", "bins"),
}
# units of nested figures (e.g. ensemble.lambda_max.median), by a component of their name
_NESTED_UNITS = {"lambda_max": "1/s", "heldout_loglik": "nats/bin",
                 "heldout_bits_per_spike": "bits/spike", "epochs": "epochs",
                 "best_epoch": "epochs", "epsilon_per_s": "1/s"}
# stored elsewhere (attributes, the lyapunov_spectrum dataset) or not metrics
_METRIC_SKIP = {"lyapunov_spectrum", "figures", "tau_info", "kind", "bin_size", "tau"}


def default_output_path(source_path) -> Path:
    """The default output of :func:`write_dynamics`: ``<stem>_dsr.nwb`` next to the source.

    Examples
    --------
    >>> from nwb_dsr.nwb.writer import default_output_path
    >>> default_output_path("/data/session.nwb").name
    'session_dsr.nwb'
    """
    source_path = Path(source_path)
    return source_path.with_name(source_path.stem + "_dsr.nwb")


# ---------------------------------------------------------------------------------------------
# building the container (in memory, no file involved)
# ---------------------------------------------------------------------------------------------

def _check_name(name) -> str:
    if not isinstance(name, str) or not name.strip() or "/" in name or ":" in name:
        raise ValueError(f"name must be a non-empty string without '/' or ':' (it names the fit "
                         f"in the processing module); got {name!r}.")
    return name


def _ids_for_nwb(ids):
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    if ids.dtype.kind == "f":
        return ids.astype(np.float64)
    return [str(i) for i in ids.tolist()]


def _compressed(data):
    from hdmf.backends.hdf5 import H5DataIO
    data = np.ascontiguousarray(data)
    if data.size < 1024:
        return data
    return H5DataIO(data, compression="gzip", compression_opts=4, shuffle=True)


def _flatten_metrics(metrics, prefix=""):
    """(name, float, unit) rows of the numeric scalars in a (nested) metrics dict."""
    rows = []
    for key, value in (metrics or {}).items():
        key = str(key)
        if not prefix and key in _METRIC_SKIP:
            continue
        if not prefix and key == "prediction_error" and isinstance(value, dict):
            rows.extend((f"PE({n})", _float(v), "") for n, v in value.items())
            continue
        if not prefix and key == "collapse":  # 1 if the free run collapsed; the reason as unit
            rows.append(("collapsed", 0.0 if value is None else 1.0, str(value or "")))
            continue
        if prefix:
            name = prefix + key
            unit = "" if key == "n" else next(
                (_NESTED_UNITS[p] for p in name.split(".") if p in _NESTED_UNITS), "")
        else:
            name, unit = _METRIC_NAMES.get(key, (key, ""))
        if isinstance(value, dict):
            rows.extend(_flatten_metrics(value, prefix=name + "."))
            continue
        if value is None or isinstance(value, (bool, int, float, np.number, np.bool_)):
            rows.append((name, _float(value), unit))
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # text and other non-numeric entries are not metrics
        if arr.ndim == 0:
            rows.append((name, float(arr), unit))
        elif arr.ndim == 1 and arr.size <= 100:
            rows.extend((f"{name}[{i}]", float(v), unit) for i, v in enumerate(arr))
    return rows


def _float(value) -> float:
    return math.nan if value is None else float(value)


def _metrics_table(metrics, lyapunov):
    from hdmf.common import DynamicTable
    rows = _flatten_metrics(metrics)
    if lyapunov is not None and len(lyapunov) and "lambda_max" not in {r[0] for r in rows}:
        rows.append(("lambda_max", float(lyapunov[0]), "1/s"))
    if not rows:
        return None
    table = DynamicTable(name="metrics", description=(
        "Evaluation metrics of the fit (nwb_dsr.analysis.evaluate; definitions as in the DSR "
        "literature: D_stsp state-space divergence, D_H power-spectrum Hellinger distance, "
        "PE(n) n-step prediction error, co_bps / bits_per_spike co-smoothing bits per spike, "
        "lambda_max largest Lyapunov exponent, tau_pred = ln 2 / lambda_max), one row each."))
    table.add_column(name="metric", description="Name of the metric.")
    table.add_column(name="value", description="Value of the metric; NaN if not computable.")
    table.add_column(name="unit", description="Unit of the value; empty if dimensionless.")
    for name, value, unit in rows:
        table.add_row(metric=name, value=value, unit=unit)
    return table


def _time_base(obs) -> dict:
    """starting_time + rate for one segment or back-to-back segments, timestamps otherwise."""
    t = np.concatenate([obs.times(k) for k in range(obs.n_segments)])
    rate = 1.0 / float(obs.bin_size)
    regular = t[0] + np.arange(t.size) * float(obs.bin_size)
    if obs.n_segments == 1 or np.allclose(t, regular, rtol=0, atol=1e-6 * float(obs.bin_size)):
        return {"starting_time": float(t[0]), "rate": rate}
    return {"timestamps": t}


def _segment_starts(obs):
    if obs.n_segments == 1:
        return None
    return np.cumsum([0] + obs.lengths[:-1]).astype(np.int64)


def build_dynamics(estimator, observations=None, *, name: str = "dsr", metrics=None,
                   lyapunov=None, n_generate: int | None = None, generate_seed: int | None = None,
                   description: str | None = None, trajectories=None):
    """Build the :class:`~nwb_dsr.nwb.DynamicalSystemModel` of a fitted estimator, in memory.

    Use it to add a fit to an NWB file you are writing yourself; :func:`write_dynamics` uses it
    to add one to an existing file.

    Parameters
    ----------
    estimator : nwb_dsr.DSR
        A fitted estimator.
    observations : nwb_dsr.Observations, optional
        The data the model was fitted to (or other data with the same channels): gives the
        latent trajectory and the predicted rates/means on its time base, and the initial state
        of the generated trajectory (the forced state of its first bin). Without it only the
        model and a generated trajectory from the zero state are stored.
    name : str, default "dsr"
        Name of the fit (the group's name).
    metrics : dict, optional
        Metrics, e.g. the output of :func:`nwb_dsr.analysis.evaluate`: its numbers are stored
        in the ``metrics`` table, one row each (``dstsp`` as ``D_stsp``, ``dh`` as ``D_H``,
        ``prediction_error`` as ``PE(n)``, ``lambda_max_per_s`` as ``lambda_max`` in 1/s, ...;
        other numeric entries under their own key), its ``lyapunov_spectrum`` in the
        ``lyapunov_spectrum`` dataset unless ``lyapunov`` is given.
    lyapunov : array_like, optional
        Lyapunov spectrum in 1/s (largest first).
    n_generate : int, optional
        Length of the generated trajectory (default: the number of bins of ``observations``, at
        most 10,000; 1,000 without observations). 0 stores none.
    generate_seed : int, optional
        Seed of the sampled observations of the generated trajectory (default: the estimator's
        seed).
    description : str, optional
        Description of the fit (default: one sentence built from the model and the source).
    trajectories : nwb_dsr.analysis.Trajectories, optional
        The trajectories to store, when already computed by
        :func:`nwb_dsr.analysis.trajectories` on ``observations`` (``n_generate`` and
        ``generate_seed`` are then theirs).

    Returns
    -------
    DynamicalSystemModel

    Raises
    ------
    ValueError
        If the estimator is not fitted, if ``observations`` do not match it, or if ``name`` is
        not a valid group name.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import DSR, Observations
    >>> from nwb_dsr.nwb import build_dynamics
    >>> obs = Observations(np.random.default_rng(0).poisson(1.0, (300, 4)), kind="counts",
    ...                    bin_size=0.01)
    >>> est = DSR(latent_dim=2, hidden_dim=4, tau=5, epochs=1, batches_per_epoch=2,
    ...           progress=False).fit(obs)
    >>> model = build_dynamics(est, obs, name="fit1", n_generate=50)
    >>> model.latent_model, model.latent.data.shape, model.generated.data.shape
    ('shallow_plrnn', (300, 2), (50, 2))
    """
    name = _check_name(name)
    check_is_fitted(estimator, "latent_model_")
    obs = None
    if observations is not None:
        obs = as_observations(observations, bin_size=estimator.bin_size_)
        if obs.n_channels != estimator.n_features_in_:
            raise ValueError(f"observations have {obs.n_channels} channels but the model was "
                             f"fitted on {estimator.n_features_in_}; pass the data it was fitted "
                             "to.")
        if not math.isclose(obs.bin_size, estimator.bin_size_, rel_tol=1e-9):
            raise ValueError(f"observations have bin_size {obs.bin_size} s but the model was "
                             f"fitted with {estimator.bin_size_} s.")
    config, params = estimator.to_state()
    scalars = [k for k, v in params.items() if np.ndim(v) == 0]
    config = dict(config, nwb={"scalar_parameters": scalars})
    lat, ob = config["latent"], config["observation"]
    hist = estimator.history_
    prov = dict(estimator.provenance_ or {})
    if obs is not None and obs.provenance:
        prov = {**prov, **obs.provenance}
    selection = prov.get("selection", {})
    state_dim = int(estimator.latent_model_.state_dim)
    n_ch = int(estimator.n_features_in_)
    bin_size = float(estimator.bin_size_)

    if description is None:
        src = prov.get("object") or "an array"
        description = (f"{lat['name']} latent model (M={lat['latent_dim']}) with a {ob['name']} "
                       f"observation layer fitted with nwb_dsr to {n_ch} "
                       f"{'units (spike counts)' if estimator.kind_ == 'counts' else 'channels'} "
                       f"of {src}, bin size {bin_size:g} s, forcing interval tau="
                       f"{int(estimator.tau_)} bins.")

    kwargs = {}
    if (lyapunov is None and isinstance(metrics, dict)
            and metrics.get("lyapunov_spectrum") is not None):
        lyapunov = [math.nan if v is None else v for v in metrics["lyapunov_spectrum"]]
    if lyapunov is not None:
        lyapunov = np.asarray(lyapunov, dtype=np.float64).ravel()
        kwargs["lyapunov_spectrum"] = lyapunov
    table = _metrics_table(metrics, lyapunov)
    if table is not None:
        kwargs["metrics"] = table
    if len(hist.loss):
        kwargs["loss"] = np.asarray(hist.loss, dtype=np.float64)
    if ob["name"] == "poisson" and ob.get("link"):
        kwargs["link"] = str(ob["link"])
    if hist.best_epoch is not None:
        kwargs["best_epoch"] = np.int64(hist.best_epoch)
    if hist.stopped:
        kwargs["stop_reason"] = str(hist.stopped)
    if prov.get("source"):
        kwargs["source_file"] = str(prov["source"])
    if prov.get("object"):
        kwargs["source_object"] = str(prov["object"])
    kwargs["selection"] = json.dumps(_jsonable(selection))

    if trajectories is None:
        from ..analysis.trajectories import trajectories as compute
        trajectories = compute(estimator, obs, n_generate=n_generate, seed=generate_seed)
    tr = trajectories
    series_kw = {}
    if obs is not None:
        tb = _time_base(obs)
        starts = _segment_starts(obs)
        extra = {} if starts is None else {"segment_starts": starts}
        Z = np.concatenate(tr.latent).astype(np.float32)
        series_kw["latent"] = LatentTrajectory(
            name="latent", data=_compressed(Z), unit="a.u.", **tb, **extra,
            description=(f"Latent states of the fit '{name}' inferred from the data: the forced "
                         "states z_t, the observation layer's inverse applied to x_t, one row per "
                         f"bin (centre times), {Z.shape[1]} state dimensions."))
        P = np.concatenate(tr.predicted).astype(np.float32)
        if estimator.kind_ == "counts":
            pkw = {"unit": "Hz", "conversion": 1.0 / bin_size}
            what = "firing rates (data: expected spike counts per bin; times conversion: Hz)"
        else:
            pkw = {"unit": str(prov.get("unit") or "a.u.")}
            what = "means"
        series_kw["predicted"] = PredictedMean(
            name="predicted", data=_compressed(P),
            channel_ids=_ids_for_nwb(estimator.channel_ids_), n_ahead=np.int64(1), **pkw, **tb,
            **extra,
            description=(f"One-step-ahead predicted {what} of the fit '{name}', one column per "
                         "unit/channel (ids in channel_ids), predicted from the forced latent "
                         "state of the previous bin."))

    if tr.n_generate > 0:
        n, seed = tr.n_generate, tr.seed
        samples = tr.generated_samples.astype(np.int32 if estimator.kind_ == "counts"
                                              else np.float32)
        series_kw["generated"] = GeneratedTrajectory(
            name="generated", data=_compressed(np.asarray(tr.generated_latent, dtype=np.float32)),
            unit="a.u.", starting_time=0.0, rate=1.0 / bin_size, seed=np.int64(seed),
            burn_in=np.int64(0), initial_state=tr.initial_state,
            mean=_compressed(tr.generated_mean.astype(np.float32)),
            samples=_compressed(samples),
            description=(f"Free-running trajectory of the fit '{name}' ({n} steps, simulated "
                         "time from 0) started from initial_state (the forced state of the first "
                         "bin of the data); mean: expected observations, samples: observations "
                         f"drawn with seed {seed}."))

    pars = [ModelParameter(name=k, data=np.atleast_1d(np.asarray(v))) for k, v in params.items()]
    return DynamicalSystemModel(
        name=name, description=description, latent_model=str(lat["name"]),
        latent_dim=np.int64(int(lat["latent_dim"])), state_dim=np.int64(state_dim),
        observation_model=str(ob["name"]), data_kind=str(estimator.kind_),
        n_channels=np.int64(n_ch),
        bin_size=bin_size, tau=np.int64(int(estimator.tau_)),
        tau_method=str((estimator.tau_info_ or {}).get("method", "fixed")),
        training_mode=str(estimator.resolved_config_.forcing.mode),
        seed=np.int64(int(estimator.seed)),
        package_version=str(config.get("package_version", "")),
        epochs=np.int64(int(hist.epochs)), training_seconds=float(hist.seconds),
        config=json.dumps(config), channel_ids=_ids_for_nwb(estimator.channel_ids_),
        parameters=ModelParameters(name="parameters", model_parameters=pars),
        **kwargs, **series_kw)


# ---------------------------------------------------------------------------------------------
# writing to a file
# ---------------------------------------------------------------------------------------------

def _existing_fit(source: Path, name: str):
    """(HDF5 path of an existing object named ``name`` in the module or None, its type)."""
    with h5py.File(source, "r") as f:
        path = f"/processing/{MODULE_NAME}/{name}"
        if path in f:
            attrs = f[path].attrs
            return path, (str(attrs.get("namespace", "")), str(attrs.get("neurodata_type", "")))
    return None, None


def _source_object_id(source: Path, prov: dict):
    """object_id of the provenance object if the data came from this very file."""
    src, obj = prov.get("source"), prov.get("object")
    if not src or not obj:
        return None
    try:
        same = Path(src).exists() and os.path.samefile(src, source)
    except OSError:
        same = False
    if not same:
        return None
    with h5py.File(source, "r") as f:
        node = f.get(str(obj))
        if node is None:
            return None
        oid = node.attrs.get("object_id")
        return None if oid is None else (oid.decode() if isinstance(oid, bytes) else str(oid))


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append(tmp: Path, container, source_oid, existing: str | None) -> None:
    """Add ``container`` to the processing module of the NWB file ``tmp`` (a private copy)."""
    from pynwb import NWBHDF5IO
    from pynwb.misc import Units
    from pynwb.base import TimeSeries
    if existing is not None:
        with h5py.File(tmp, "r+") as f:
            del f[existing]
    with NWBHDF5IO(str(tmp), mode="a", load_namespaces=True) as io:
        try:
            nwbfile = io.read()
        except Exception as err:  # any failure to build the file's objects
            raise ValueError(f"pynwb cannot read the source file ({type(err).__name__}: "
                             f"{str(err)[:300]}); write_dynamics adds to files pynwb can open. "
                             "Install the extensions it uses, or write the model with "
                             "DSR.save instead.") from err
        if source_oid is not None:
            target = nwbfile.objects.get(source_oid)
            if isinstance(target, Units):
                container.source_units = target
            elif isinstance(target, TimeSeries):
                container.source_series = target
        if MODULE_NAME in nwbfile.processing:
            module = nwbfile.processing[MODULE_NAME]
        else:
            module = nwbfile.create_processing_module(name=MODULE_NAME,
                                                      description=MODULE_DESCRIPTION)
        module.add(container)
        io.write(nwbfile, cache_spec=True)
        written = {name: io.manager.namespace_catalog.get_namespace(name)["version"]
                   for name in io.manager.namespace_catalog.namespaces}
    _prune_cached_specs(tmp, written)


def _prune_cached_specs(path: Path, written: dict) -> None:
    """Keep only the just-written version of each namespace cached more than once.

    Appending with a newer pynwb caches the current core/hdmf-common schema next to the file's
    older one and sets the root ``nwb_version`` to the current version (pynwb upgrades the
    objects whose type changed, e.g. the electrodes table). hdmf then picks the cached version
    to load by *alphanumeric* order ('2.4.0' > '2.11.0'), so validation with cached namespaces
    would use the old schema for a file that now conforms to the new one. Dropping the
    superseded copies makes the file self-consistent; no data object is touched.
    """
    with h5py.File(path, "r+") as f:
        loc = f.attrs.get(".specloc")
        if loc is None:
            return
        specs = f[loc]
        for name, version in written.items():
            group = specs.get(name)
            if not isinstance(group, h5py.Group) or str(version) not in group or len(group) < 2:
                continue
            for other in [v for v in group if v != str(version)]:
                del group[other]


def check_output(source_path, *, name: str = "dsr", out=None, in_place: bool = False,
                 overwrite: bool = False):
    """Check the arguments of :func:`write_dynamics` that concern files, before any work.

    The command line calls it before fitting, so that a bad output path fails at once.

    Parameters
    ----------
    source_path, name, out, in_place, overwrite
        As in :func:`write_dynamics`.

    Returns
    -------
    source : pathlib.Path
    target : pathlib.Path
        The file that will be written.
    existing : str or None
        HDF5 path of the fit of the same name that will be replaced (``overwrite=True``).

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError
        As :func:`write_dynamics`.

    Examples
    --------
    >>> from nwb_dsr.nwb.writer import check_output
    >>> check_output("missing.nwb")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no file at missing.nwb; source_path must be an existing NWB file.
    """
    name = _check_name(name)
    source = Path(source_path)
    if not source.is_file():
        raise FileNotFoundError(f"no file at {source}; source_path must be an existing NWB file.")
    if not h5py.is_hdf5(source):
        raise ValueError(f"{source} is not an HDF5 file; write_dynamics writes into NWB HDF5 "
                         "files (Zarr-backed NWB is not supported).")
    if in_place and out is not None and Path(out).resolve() != source.resolve():
        raise ValueError("give either out= (a new file) or in_place=True (extend the source), "
                         "not both.")
    if in_place:
        target = source
    else:
        target = Path(out) if out is not None else default_output_path(source)
        if target.resolve() == source.resolve() or (target.exists()
                                                    and os.path.samefile(target, source)):
            raise ValueError(f"out is the source file {source}; writing over the source is only "
                             "done with in_place=True (atomically). Choose another out path.")
        if target.is_dir():
            raise ValueError(f"out={target} is a folder; give a file path such as "
                             f"{target / default_output_path(source).name}.")
        if not target.parent.is_dir():
            raise FileNotFoundError(f"the folder of out={target} does not exist; create it first.")
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it, "
                                  "choose another out path, or add the fit to it with "
                                  "write_dynamics(that_file, ..., in_place=True).")
    existing, kind = _existing_fit(source, name)
    if existing is not None:
        if not overwrite:
            raise FileExistsError(f"{source} already has an object named {name!r} in the "
                                  f"processing module {MODULE_NAME!r}; pass overwrite=True to "
                                  "replace it, or choose another name.")
        if kind != (NAMESPACE, "DynamicalSystemModel"):
            raise ValueError(f"{existing} in {source} is not an nwb_dsr fit ({kind[1] or 'no '}"
                             "type); it is never overwritten. Choose another name.")
    return source, target, existing


def write_dynamics(source_path, estimator, observations=None, *, name: str = "dsr", out=None,
                   in_place: bool = False, overwrite: bool = False, metrics=None,
                   lyapunov=None, n_generate: int | None = None,
                   generate_seed: int | None = None, description: str | None = None,
                   trajectories=None) -> Path:
    """Write a fitted model and its trajectories into an NWB file.

    The fit is stored as a ``DynamicalSystemModel`` named ``name`` in the processing module
    ``dynamics`` (created if needed), with its ``latent``, ``generated`` and ``predicted``
    series inside. By default a new file is written (the source's content plus the module) and
    the source is left byte-identical; see the module docstring for the atomic procedure.

    Parameters
    ----------
    source_path : str or path-like
        The NWB (HDF5) file the data came from.
    estimator : nwb_dsr.DSR
        A fitted estimator.
    observations : nwb_dsr.Observations, optional
        The data the model was fitted to; see :func:`build_dynamics`.
    name : str, default "dsr"
        Name of the fit; several fits live in one file under distinct names.
    out : str or path-like, optional
        Output file (default: ``<source stem>_dsr.nwb`` next to the source). Must differ from
        the source; use ``in_place=True`` to extend the source itself.
    in_place : bool, default False
        Add the fit to ``source_path`` itself (atomically replaced).
    overwrite : bool, default False
        Replace a fit with the same name, and an existing ``out`` file.
    metrics, lyapunov, n_generate, generate_seed, description, trajectories
        See :func:`build_dynamics`.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    FileNotFoundError
        If ``source_path`` does not exist.
    FileExistsError
        If ``out`` exists, or a fit named ``name`` exists, and ``overwrite`` is False.
    ValueError
        If ``out`` is the source, if both ``out`` and ``in_place`` are given, if the source is
        not an HDF5 file, or if the estimator/observations are invalid (see
        :func:`build_dynamics`).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from nwb_dsr import DSR
    >>> from nwb_dsr.datasets import write_lorenz_nwb
    >>> from nwb_dsr.nwb import write_dynamics, list_dynamics
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> src = write_lorenz_nwb(tmp / "rec.nwb", n_units=4, duration=3.0, lfp=False)
    >>> est = DSR(latent_dim=2, hidden_dim=4, tau=5, epochs=1, batches_per_epoch=2,
    ...           progress=False).fit(np.random.default_rng(0).poisson(1.0, (300, 4)),
    ...                               bin_size=0.01)
    >>> out = write_dynamics(src, est, name="fit1", n_generate=20)
    >>> out.name, [d["name"] for d in list_dynamics(out)]
    ('rec_dsr.nwb', ['fit1'])
    """
    source, target, existing = check_output(source_path, name=name, out=out, in_place=in_place,
                                            overwrite=overwrite)
    container = build_dynamics(estimator, observations, name=name, metrics=metrics,
                               lyapunov=lyapunov, n_generate=n_generate,
                               generate_seed=generate_seed, description=description,
                               trajectories=trajectories)
    prov = dict(estimator.provenance_ or {})
    if observations is not None and getattr(observations, "provenance", None):
        prov.update(observations.provenance)
    source_oid = _source_object_id(source, prov)

    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        shutil.copyfile(source, tmp)
        _append(tmp, container, source_oid, existing)
        if in_place:
            shutil.copymode(source, tmp)
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    _fsync_dir(target.parent)
    return target
