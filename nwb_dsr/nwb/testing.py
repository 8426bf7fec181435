"""Mock factories of the ndx-dsr types, for users' tests (like :mod:`pynwb.testing.mock`).

Each ``mock_*`` function returns a valid object with small default contents; pass ``nwbfile``
to also add it to the processing module ``dynamics`` of an in-memory :class:`pynwb.NWBFile`.

Examples
--------
>>> from pynwb.testing.mock.file import mock_NWBFile
>>> from nwb_dsr.nwb.testing import mock_DynamicalSystemModel
>>> nwbfile = mock_NWBFile()
>>> model = mock_DynamicalSystemModel(nwbfile=nwbfile)
>>> nwbfile.processing["dynamics"]["dsr"] is model
True
"""
from __future__ import annotations

import numpy as np

from . import (DynamicalSystemModel, GeneratedTrajectory, LatentTrajectory, ModelParameter,
               ModelParameters, PredictedMean)
from .writer import MODULE_DESCRIPTION, MODULE_NAME, build_dynamics

__all__ = ["mock_ModelParameters", "mock_LatentTrajectory", "mock_GeneratedTrajectory",
           "mock_PredictedMean", "mock_DynamicalSystemModel", "mock_fitted_estimator",
           "file_snapshot"]


def _add(nwbfile, obj):
    if nwbfile is not None:
        if MODULE_NAME in nwbfile.processing:
            module = nwbfile.processing[MODULE_NAME]
        else:
            module = nwbfile.create_processing_module(name=MODULE_NAME,
                                                      description=MODULE_DESCRIPTION)
        module.add(obj)
    return obj


def _rng(seed):
    return np.random.default_rng(seed)


def mock_ModelParameters(name: str = "parameters", parameters: dict | None = None,
                         seed: int = 0) -> ModelParameters:
    """A :class:`ModelParameters` group (default: a 3-d PLRNN's A, W, h and a 4×3 read-out).

    Examples
    --------
    >>> from nwb_dsr.nwb.testing import mock_ModelParameters
    >>> sorted(mock_ModelParameters().model_parameters)
    ['latent.A', 'latent.W', 'latent.h', 'observation.B', 'observation.b']
    """
    if parameters is None:
        rng = _rng(seed)
        parameters = {"latent.A": rng.uniform(0.5, 0.9, 3), "latent.W": rng.normal(0, 0.1, (3, 3)),
                      "latent.h": np.zeros(3), "observation.B": rng.normal(0, 1, (4, 3)),
                      "observation.b": np.zeros(4)}
    return ModelParameters(name=name, model_parameters=[
        ModelParameter(name=k, data=np.atleast_1d(np.asarray(v))) for k, v in parameters.items()])


def mock_LatentTrajectory(name: str = "latent", data=None, n_times: int = 100, n_dims: int = 3,
                          rate: float = 100.0, starting_time: float = 0.005, timestamps=None,
                          seed: int = 0, nwbfile=None) -> LatentTrajectory:
    """A :class:`LatentTrajectory` of random states, shape (n_times, n_dims).

    Examples
    --------
    >>> from nwb_dsr.nwb.testing import mock_LatentTrajectory
    >>> mock_LatentTrajectory(n_times=10, n_dims=2).data.shape
    (10, 2)
    """
    data = _rng(seed).normal(size=(n_times, n_dims)) if data is None else np.asarray(data)
    tb = ({"timestamps": np.asarray(timestamps, dtype=float)} if timestamps is not None
          else {"starting_time": float(starting_time), "rate": float(rate)})
    return _add(nwbfile, LatentTrajectory(name=name, data=data, unit="a.u.", **tb,
                                          description="Mock latent trajectory."))


def mock_GeneratedTrajectory(name: str = "generated", n_times: int = 100, n_dims: int = 3,
                             n_channels: int = 4, rate: float = 100.0, seed: int = 0,
                             nwbfile=None) -> GeneratedTrajectory:
    """A :class:`GeneratedTrajectory` of random states with mean and sampled counts.

    Examples
    --------
    >>> from nwb_dsr.nwb.testing import mock_GeneratedTrajectory
    >>> g = mock_GeneratedTrajectory(n_times=20)
    >>> g.data.shape, g.samples.shape, int(g.seed)
    ((20, 3), (20, 4), 0)
    """
    rng = _rng(seed)
    mean = np.exp(rng.normal(0, 0.3, (n_times, n_channels)))
    return _add(nwbfile, GeneratedTrajectory(
        name=name, data=rng.normal(size=(n_times, n_dims)), unit="a.u.", starting_time=0.0,
        rate=float(rate), seed=np.int64(seed), burn_in=np.int64(0),
        initial_state=rng.normal(size=n_dims), mean=mean,
        samples=rng.poisson(mean).astype(np.int32), description="Mock generated trajectory."))


def mock_PredictedMean(name: str = "predicted", n_times: int = 100, n_channels: int = 4,
                       rate: float = 100.0, starting_time: float = 0.005, channel_ids=None,
                       seed: int = 0, nwbfile=None) -> PredictedMean:
    """A :class:`PredictedMean` of random positive rates (counts per bin; conversion gives Hz).

    Examples
    --------
    >>> from nwb_dsr.nwb.testing import mock_PredictedMean
    >>> mock_PredictedMean(n_channels=3).channel_ids.tolist()
    [0, 1, 2]
    """
    ids = np.arange(n_channels) if channel_ids is None else np.asarray(channel_ids)
    data = np.exp(_rng(seed).normal(0, 0.3, (n_times, n_channels)))
    return _add(nwbfile, PredictedMean(
        name=name, data=data, unit="Hz", conversion=float(rate), channel_ids=ids,
        n_ahead=np.int64(1), starting_time=float(starting_time), rate=float(rate),
        description="Mock predicted rates."))


def mock_fitted_estimator(model: str = "plrnn", observation: str = "poisson",
                          latent_dim: int = 2, n_channels: int = 4, n_bins: int = 200,
                          bin_size: float = 0.01, seed: int = 0):
    """A tiny fitted :class:`nwb_dsr.DSR` and the Observations it was fitted to (one short
    member, short validation runs: well under a second).

    Returns
    -------
    estimator : nwb_dsr.DSR
    observations : nwb_dsr.Observations

    Examples
    --------
    >>> from nwb_dsr.nwb.testing import mock_fitted_estimator
    >>> est, obs = mock_fitted_estimator(n_channels=3)
    >>> est.n_features_in_, obs.kind
    (3, 'counts')
    """
    from ..estimator import DSR
    from ..observations import Observations
    rng = _rng(seed)
    t = np.arange(n_bins) * bin_size
    phase = 2 * np.pi * 2.0 * t[:, None] + rng.uniform(0, 2 * np.pi, n_channels)
    if observation == "poisson":
        x = rng.poisson(np.exp(0.5 * np.sin(phase)))
        obs = Observations(x, kind="counts", bin_size=bin_size)
    else:
        x = np.sin(phase) + 0.1 * rng.normal(size=(n_bins, n_channels))
        obs = Observations(x, kind="continuous", bin_size=bin_size)
    est = DSR(model=model, observation=observation, latent_dim=latent_dim, hidden_dim=4,
              n_bases=2, tau=5, epochs=1, batches_per_epoch=1, batch_size=4, seq_len=20,
              eval_every=1, ensemble=1, restarts=0, n_val_steps=200, n_final_steps=200,
              n_final_probes=2, progress=False, seed=seed).fit(obs)
    return est, obs


def mock_DynamicalSystemModel(name: str = "dsr", model: str = "plrnn",
                              observation: str = "poisson", latent_dim: int = 2,
                              n_channels: int = 4, n_bins: int = 200, bin_size: float = 0.01,
                              n_generate: int = 50, metrics: dict | None = None,
                              lyapunov=None, seed: int = 0, nwbfile=None) -> DynamicalSystemModel:
    """A complete :class:`DynamicalSystemModel` of a tiny real fit (restorable, runnable).

    Parameters
    ----------
    name : str
        Name of the fit.
    model, observation : str
        Latent model and observation layer (see :class:`nwb_dsr.DSR`).
    latent_dim, n_channels, n_bins, bin_size, seed
        Size of the model and of the synthetic data it is fitted to.
    n_generate : int
        Length of the generated trajectory.
    metrics : dict, optional
        Metrics to store (default: a few made-up values).
    lyapunov : array_like, optional
        Lyapunov spectrum in 1/s (default: made-up values).
    nwbfile : pynwb.NWBFile, optional
        If given, the model is added to its ``dynamics`` processing module.

    Returns
    -------
    DynamicalSystemModel

    Examples
    --------
    >>> from nwb_dsr.nwb.testing import mock_DynamicalSystemModel
    >>> m = mock_DynamicalSystemModel(model="rnn", observation="gaussian")
    >>> m.latent_model, m.observation_model, m.predicted.data.shape
    ('rnn', 'gaussian', (200, 4))
    """
    est, obs = mock_fitted_estimator(model=model, observation=observation,
                                     latent_dim=latent_dim, n_channels=n_channels,
                                     n_bins=n_bins, bin_size=bin_size, seed=seed)
    if metrics is None:
        metrics = {"D_stsp": 0.5, "D_H": 0.2, "PE(20)": 0.1}
    if lyapunov is None:
        lyapunov = np.linspace(0.5, -5.0, est.latent_model_.state_dim)
    container = build_dynamics(est, obs, name=name, metrics=metrics, lyapunov=lyapunov,
                               n_generate=n_generate)
    return _add(nwbfile, container)


def file_snapshot(path, exclude=("/specifications", f"/processing/{MODULE_NAME}")) -> dict:
    """A comparable digest of every object of an HDF5/NWB file, to check that nothing changed.

    Datasets are digested by value (SHA-1 of their bytes, or of the repr of object and
    reference values), dtype, shape, chunking, compression and attributes; groups by their
    attributes and links by their target.

    Parameters
    ----------
    path : str or path-like
        The file.
    exclude : tuple of str
        HDF5 paths whose subtrees are left out (default: the cached specifications and the
        ``dynamics`` module that the writer adds).

    Returns
    -------
    dict
        ``{hdf5_path: digest}``; compare two snapshots with ``==`` or key by key.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nwb_dsr.datasets import write_lorenz_nwb
    >>> from nwb_dsr.nwb.testing import file_snapshot
    >>> p = write_lorenz_nwb(pathlib.Path(tempfile.mkdtemp()) / "r.nwb", n_units=2,
    ...                      duration=1.0, lfp=False)
    >>> file_snapshot(p) == file_snapshot(p)
    True
    """
    import hashlib

    import h5py

    def attrs(obj):
        return {k: repr(v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()
                if k != ".specloc"}

    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = attrs(f)

        def visit(name, link):
            full = "/" + name
            if any(full == e or full.startswith(e + "/") for e in exclude):
                return
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                out[full] = ("link", repr(getattr(link, "path", "")),
                             repr(getattr(link, "filename", "")))
                return
            obj = f[name]
            if isinstance(obj, h5py.Dataset):
                val = obj[()]
                if isinstance(val, np.ndarray) and val.dtype.kind not in "OV":
                    raw = val.tobytes()
                else:
                    raw = repr(val.tolist() if hasattr(val, "tolist") else val).encode()
                out[full] = ("dataset", hashlib.sha1(raw).hexdigest(), obj.dtype.str,
                             obj.shape, obj.chunks, obj.compression, attrs(obj))
            else:
                out[full] = ("group", attrs(obj))

        f.visititems_links(visit)
    return out
