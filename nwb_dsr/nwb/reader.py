"""Read fits back from NWB files: :func:`read_dynamics`, :func:`read_results`,
:func:`list_dynamics`.

All three read the fit's own HDF5 group with h5py: fast, and independent of whether pynwb can
build the rest of the file. Open the file with :class:`pynwb.NWBHDF5IO` for typed access
(``nwbfile.processing["dynamics"]["dsr"]`` is a :class:`~nwb_dsr.nwb.DynamicalSystemModel`).
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from . import NAMESPACE

__all__ = ["read_dynamics", "read_results", "list_dynamics"]


def _check_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}; give the path of an NWB file.")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 NWB file.")
    return path


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _is_fit(node) -> bool:
    return (isinstance(node, h5py.Group)
            and _text(node.attrs.get("namespace", "")) == NAMESPACE
            and _text(node.attrs.get("neurodata_type", "")) == "DynamicalSystemModel")


def _fit_groups(f: h5py.File) -> list:
    """HDF5 groups of every DynamicalSystemModel in /processing/<module>/<name>."""
    out = []
    proc = f.get("processing")
    if not isinstance(proc, h5py.Group):
        return out
    for module in proc.values():
        if not isinstance(module, h5py.Group):
            continue
        out.extend(node for node in module.values() if _is_fit(node))
    return out


def _h5_metrics(group) -> dict:
    table = group.get("metrics")
    if table is None or "metric" not in table or "value" not in table:
        return {}
    names = table["metric"].asstr()[()]
    values = table["value"][()]
    return {str(n): float(v) for n, v in zip(names, values)}


def list_dynamics(path) -> list:
    """The fits stored in an NWB file (read with h5py only: fast, and works on files whose
    other parts pynwb cannot build).

    Parameters
    ----------
    path : str or path-like
        An NWB file.

    Returns
    -------
    list of dict
        One dict per fit: ``name``, ``module``, ``path`` (inside the file), ``latent_model``,
        ``observation_model``, ``data_kind``, ``latent_dim``, ``n_channels``, ``bin_size``,
        ``tau``, ``epochs``, ``source_object``, ``metrics`` (name → value) and
        ``lambda_max`` (1/s, None if no spectrum was stored).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not an HDF5 file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nwb_dsr.datasets import write_lorenz_nwb
    >>> from nwb_dsr.nwb import list_dynamics
    >>> src = write_lorenz_nwb(pathlib.Path(tempfile.mkdtemp()) / "rec.nwb", n_units=3,
    ...                        duration=2.0, lfp=False)
    >>> list_dynamics(src)
    []
    """
    path = _check_file(path)
    out = []
    with h5py.File(path, "r") as f:
        for g in _fit_groups(f):
            a = g.attrs
            lam = g.get("lyapunov_spectrum")
            lam_max = float(lam[0]) if lam is not None and lam.shape[0] else None
            out.append({
                "name": g.name.rsplit("/", 1)[-1],
                "module": g.parent.name.rsplit("/", 1)[-1],
                "path": g.name,
                "latent_model": _text(a.get("latent_model", "")),
                "observation_model": _text(a.get("observation_model", "")),
                "data_kind": _text(a.get("data_kind", "")),
                "latent_dim": int(a.get("latent_dim", 0)),
                "n_channels": int(a.get("n_channels", 0)),
                "bin_size": float(a.get("bin_size", np.nan)),
                "tau": int(a.get("tau", 0)),
                "epochs": int(a.get("epochs", 0)),
                "source_object": _text(a.get("source_object", "")),
                "metrics": _h5_metrics(g),
                "lambda_max": lam_max,
            })
    return out


def _choose(fits: dict, name, path) -> str:
    if not fits:
        raise ValueError(f"{path} holds no nwb_dsr fit (no DynamicalSystemModel); write one with "
                         "nwb_dsr.write_dynamics or `nwb-dsr fit`.")
    if name is None:
        if len(fits) > 1:
            raise ValueError(f"{path} holds several fits "
                             f"{sorted(k.rsplit('/', 1)[-1] for k in fits)}; choose one with "
                             "name=...")
        return next(iter(fits))
    if name in fits:
        return name
    matches = [k for k in fits if k.rsplit("/", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"several fits are named {name!r} in {path}: {sorted(matches)}; give "
                         "'module/name'.")
    raise ValueError(f"no fit named {name!r} in {path}; it holds "
                     f"{sorted(k.rsplit('/', 1)[-1] for k in fits)}.")


def _find(f: h5py.File, name, path):
    """The HDF5 group of the fit called ``name`` ('name' or 'module/name')."""
    fits = {f"{g.parent.name.rsplit('/', 1)[-1]}/{g.name.rsplit('/', 1)[-1]}": g
            for g in _fit_groups(f)}
    return fits[_choose(fits, name, path)]


def _state(group) -> tuple[dict, dict]:
    config = json.loads(_text(group["config"][()]))
    scalars = set(config.get("nwb", {}).get("scalar_parameters", []))
    params = {}
    for pname, ds in group["parameters"].items():
        arr = np.asarray(ds[()])
        params[pname] = arr.reshape(()) if pname in scalars else arr
    return config, params


def read_dynamics(path, name: str | None = None):
    """Restore a fitted, runnable :class:`nwb_dsr.DSR` from an NWB file.

    The model is read with h5py from its own group only, so it can be restored even from a file
    whose other parts pynwb cannot build.

    Parameters
    ----------
    path : str or path-like
        An NWB file written by :func:`nwb_dsr.write_dynamics`.
    name : str, optional
        Name of the fit (or ``"module/name"``); may be left out when the file holds one fit.

    Returns
    -------
    nwb_dsr.DSR
        The fitted estimator (parameters, hyper-parameters, training history, tau, bin size,
        channel ids, provenance).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file holds no fit, several fits and no ``name``, or no fit called ``name``.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from nwb_dsr import DSR
    >>> from nwb_dsr.datasets import write_lorenz_nwb
    >>> from nwb_dsr.nwb import write_dynamics, read_dynamics
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> src = write_lorenz_nwb(tmp / "rec.nwb", n_units=3, duration=2.0, lfp=False)
    >>> est = DSR(latent_dim=2, hidden_dim=4, tau=5, epochs=1, batches_per_epoch=2,
    ...           progress=False).fit(np.random.default_rng(0).poisson(1.0, (200, 3)))
    >>> back = read_dynamics(write_dynamics(src, est, n_generate=10))
    >>> np.allclose(back.generate(5), est.generate(5))
    True
    """
    from ..estimator import DSR
    path = _check_file(path)
    with h5py.File(path, "r") as f:
        group = _find(f, name, path)
        config, params = _state(group)
        attrs = dict(group.attrs)
    est = DSR.from_state(config, params)
    _check_attributes_agree(est, attrs, path)
    return est


def _check_attributes_agree(est, attrs: dict, path) -> None:
    """The group's attributes (what NWB users read) must agree with the stored config."""
    pairs = {"tau": (est.tau_, "tau"), "bin_size": (est.bin_size_, "bin_size"),
             "latent_model": (est.latent_model_.name, "latent_model"),
             "latent_dim": (est.latent_model_.latent_dim, "latent_dim")}
    for key, (value, label) in pairs.items():
        if key not in attrs:
            continue
        stored = attrs[key]
        stored = _text(stored) if isinstance(value, str) else float(np.asarray(stored))
        same = stored == value if isinstance(value, str) else \
            np.isclose(stored, float(value), rtol=1e-9, atol=0)
        if not same:
            raise ValueError(f"the fit in {path} is inconsistent: its attribute {label} is "
                             f"{stored!r} but its stored configuration says {value!r}. The file "
                             "was changed after writing; write the fit again.")


def _array(ds):
    arr = np.asarray(ds[()])
    if arr.dtype.kind in "SO":
        arr = np.array([_text(x) for x in arr.ravel()]).reshape(arr.shape)
    return arr


def _series(ts) -> dict | None:
    """A stored TimeSeries (pynwb object) as plain arrays and numbers."""
    if ts is None:
        return None
    d = {"data": np.asarray(ts.data[()]), "unit": ts.unit, "conversion": float(ts.conversion),
         "offset": float(getattr(ts, "offset", 0.0) or 0.0), "description": ts.description}
    if ts.timestamps is not None:
        d["timestamps"] = np.asarray(ts.timestamps[()])
    else:
        d["starting_time"], d["rate"] = float(ts.starting_time), float(ts.rate)
        d["timestamps"] = d["starting_time"] + np.arange(d["data"].shape[0]) / d["rate"]
    for extra in ("segment_starts", "channel_ids", "initial_state", "mean", "samples"):
        value = getattr(ts, extra, None)
        if value is not None:
            arr = np.asarray(value[()])
            if arr.dtype.kind in "SO":
                arr = np.array([_text(x) for x in arr.ravel()]).reshape(arr.shape)
            d[extra] = arr
    for extra in ("seed", "burn_in", "n_ahead"):
        value = getattr(ts, extra, None)
        if value is not None:
            d[extra] = int(value)
    return d


_MODEL_ATTRS = ("description", "latent_model", "latent_dim", "state_dim", "observation_model",
                "link", "data_kind", "n_channels", "bin_size", "tau", "tau_method",
                "training_mode", "seed", "package_version", "epochs", "training_seconds",
                "best_epoch", "stop_reason", "source_file", "source_object")


def read_results(path, name: str | None = None) -> dict:
    """Everything stored with a fit, as plain Python and NumPy objects.

    Parameters
    ----------
    path : str or path-like
        An NWB file written by :func:`nwb_dsr.write_dynamics`.
    name : str, optional
        Name of the fit; may be left out when the file holds one fit.

    Returns
    -------
    dict
        ``name``, ``module``, ``attributes`` (the model's scalar fields: latent_model, tau,
        bin_size, seed, ...), ``config`` (dict), ``parameters`` ({name: ndarray}),
        ``channel_ids``, ``selection`` (dict), ``source_link`` (path of the linked source
        object or None), ``loss``, ``lyapunov_spectrum`` (1/s), ``metrics``
        ({metric: value}), and ``latent``, ``generated``, ``predicted`` (each a dict with
        ``data``, ``timestamps``, ``unit``, ``conversion`` and the series' own fields, or None).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_dynamics`.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from nwb_dsr import DSR
    >>> from nwb_dsr.datasets import write_lorenz_nwb
    >>> from nwb_dsr.nwb import write_dynamics, read_results
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> src = write_lorenz_nwb(tmp / "rec.nwb", n_units=3, duration=2.0, lfp=False)
    >>> x = np.random.default_rng(0).poisson(1.0, (200, 3))
    >>> est = DSR(latent_dim=2, hidden_dim=4, tau=5, epochs=1, batches_per_epoch=2,
    ...           progress=False).fit(x, bin_size=0.01)
    >>> res = read_results(write_dynamics(src, est, x, n_generate=10))
    >>> res["latent"]["data"].shape, res["generated"]["seed"]
    ((200, 2), 0)
    """
    path = _check_file(path)
    with h5py.File(path, "r") as f:
        g = _find(f, name, path)
        config, params = _state(g)
        attrs = {}
        for key in _MODEL_ATTRS:
            v = g.attrs.get(key)
            if isinstance(v, (bytes, str)):
                v = _text(v)
            elif isinstance(v, np.generic):
                v = v.item()
            attrs[key] = v
        link = None
        for lname in ("source_units", "source_series"):
            ln = g.get(lname, getlink=True)
            if isinstance(ln, h5py.SoftLink):
                link = ln.path
        out = {
            "name": g.name.rsplit("/", 1)[-1],
            "module": g.parent.name.rsplit("/", 1)[-1],
            "attributes": attrs,
            "config": config,
            "parameters": params,
            "channel_ids": _array(g["channel_ids"]),
            "selection": json.loads(_text(g.attrs["selection"])) if "selection" in g.attrs else {},
            "source_link": link,
            "loss": np.asarray(g["loss"][()]) if "loss" in g else None,
            "lyapunov_spectrum": (np.asarray(g["lyapunov_spectrum"][()])
                                  if "lyapunov_spectrum" in g else None),
            "metrics": _h5_metrics(g),
        }
        module, fit = out["module"], out["name"]
    from pynwb import NWBHDF5IO
    with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        model = io.read().processing[module][fit]
        for key in ("latent", "generated", "predicted"):
            out[key] = _series(getattr(model, key, None))
    return out
