"""The scikit-learn estimator over the trainer: :class:`DSR`.

Its keyword arguments are the settings of :class:`nwb_dsr.config.DSRConfig` (one flat name
each, same defaults); ``fit`` resolves them against the data once
(:func:`nwb_dsr.policies.resolve`) and keeps the result as ``resolved_config_``.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._json import jsonable
from .config import LYAPUNOV_STARTS, DSRConfig, ResolvedConfig
from .models.latent import make_latent_model
from .models.observation import make_observation_model
from .models.rollout import free_run, infer_states, mean_state, smooth_states
from .observations import Observations, as_observations
from .policies import resolve
from .protocol import EvaluationProtocol, heldout_likelihood, spread_states
from .training.forcing import FORCING_SCHEMES, make_forcing
from .training.trainer import Trainer, TrainingHistory

__all__ = ["DSR", "NotFittedError", "as_observations", "member_seed"]

STATE_FORMAT = "nwb_dsr.DSR/2"


def member_seed(seed: int, index: int) -> int:
    """Seed of ensemble member ``index``: the estimator's own seed for the first member (so
    ``ensemble=1`` is the plain fit), then seeds drawn from (seed, index), so that the
    ensembles of two different seeds share no member.

    Examples
    --------
    >>> member_seed(7, 0)
    7
    >>> member_seed(0, 1) == member_seed(0, 1) != member_seed(1, 1)
    True
    """
    if index == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed) % 2 ** 32, int(index)]).generate_state(1)
    return int(state[0] >> 1)


def _selection_key(member: dict) -> tuple:
    """Ensemble rule: the lowest score of the selected checkpoint (``history.best_score``: its
    final check's score or spectral rank with ``n_final_checks`` > 1, else its validation
    score) wins; ties and missing scores go to the earlier member."""
    score = member.get("score")
    return (score if score is not None and math.isfinite(score) else math.inf,
            member["member"])


def _settings_doc() -> str:
    lines = []
    for name, (section, f) in DSRConfig.settings().items():
        default = f.default
        choices = f.metadata.get("choices")
        kind = "{" + ", ".join(repr(c) for c in choices) + "}" if choices else \
            type(default).__name__ if default is not None else "optional"
        lines.append(f"    {name} : {kind}, default {default!r}\n"
                     f"        {f.metadata['help'][0].upper()}{f.metadata['help'][1:]} "
                     f"(``{section}`` section).")
    return "\n".join(lines)


class DSR(BaseEstimator):
    __doc__ = """Dynamical-systems reconstruction by a latent RNN trained with sparsely forced BPTT.

    A scikit-learn estimator (``clone``, ``get_params``/``set_params``, pipelines and
    ``GridSearchCV`` work). Every keyword is a setting of :class:`nwb_dsr.config.DSRConfig`,
    the one source of defaults; the command line and the NWB record derive from the same.

    Parameters
    ----------
{settings}

    Attributes
    ----------
    resolved_config_ : ResolvedConfig
        The settings with every rule made a number for the training data (τ, latent size,
        forcing scheme, smoothing in bins, ...).
    latent_model_ : LatentModel
    observation_model_ : ObservationModel
    history_ : TrainingHistory
    tau_ : int
        Forcing interval used (bins).
    tau_info_ : dict
        How ``tau_`` was obtained (``{{"method": "fixed"}}`` or the λ_max estimate).
    forcing_states_ : ndarray or None
        With ``mode="shooting"``: the learned forcing states (n_bins, M) of the training data.
    start_states_ : ndarray, shape (LYAPUNOV_STARTS, state_dim)
        Forced states of :data:`~nwb_dsr.config.LYAPUNOV_STARTS` bins spread evenly over the
        training data (the first bin first): where :meth:`generate` (the first whose run
        stays finite) and the Lyapunov spectrum (all of them) start by default, so both
        describe the attractor the data occupy, not one that only the mean state falls into.
        Saved with the model (None for a model saved before they were kept: the mean state is
        used then).
    members_ : list of dict
        One record per ensemble member (``ensemble`` setting; member k fits from
        :func:`member_seed` (seed, k), the first from ``seed`` itself): ``seed``,
        ``score`` (the selected checkpoint's ``history_.best_score``, lower is better: its
        score in the final check of the best checkpoints, its spectral rank there with
        ``selection="spectrum"``, or its validation score with ``n_final_checks=1``),
        ``D_stsp`` and ``D_H`` of that check, ``collapse``, ``epochs``,
        ``best_epoch``, ``seconds``, ``selected``, ``restart`` (a member fitted because the
        selected one had collapsed, see the ``restarts`` setting) and, with more than one
        member, ``lambda_max`` (1/s), ``heldout_loglik`` (nats per bin and channel of τ-step
        forecasts of the validation data from forced states, see
        :func:`nwb_dsr.protocol.heldout_likelihood`) and ``heldout_bits_per_spike`` (counts).
        The selected member (lowest score) is the model; the spread of the others is the
        uncertainty of the fit (see :func:`nwb_dsr.analysis.ensemble_summary`).
    collapse_ : str or None
        Why the selected model's free runs collapsed on the validation data (``"fixed_point"``,
        ``"damped"``, ``"exploding"``, ``"non_finite"`` or ``"drifting"``, see
        :func:`nwb_dsr.collapse.detect_collapse`), in its final check (or its validation with
        ``n_final_checks=1``), or None. Model selection prefers any checkpoint that did not
        collapse; when every one did, :meth:`fit` warns with a
        :class:`~nwb_dsr.collapse.CollapseWarning`.
    bin_size_ : float
    kind_ : str
    n_features_in_ : int
    channel_ids_ : ndarray
    provenance_ : dict
    noise_std_ : ndarray
        Residual standard deviation per channel (Gaussian layer), used when sampling.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import DSR
    >>> t = np.arange(4000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], axis=1)
    >>> est = DSR(latent_dim=2, hidden_dim=16, tau=10, epochs=3, progress=False).fit(x, bin_size=0.05)
    >>> est.generate(100).shape
    (100, 2)
    >>> est.resolved_config_.forcing.mode
    'sparse'
    """.format(settings=_settings_doc())

    def __init__(self, **params):
        defaults = DSRConfig.defaults()
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise TypeError(f"DSR got unexpected keyword argument(s) {unknown}; valid settings "
                            f"are {list(defaults)}.")
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    def config(self) -> DSRConfig:
        """The estimator's settings as a checked :class:`~nwb_dsr.config.DSRConfig`."""
        return DSRConfig.from_params(**self.get_params())

    # ------------------------------------------------------------------ fitted state
    @property
    def tau_(self) -> int:
        return int(self.resolved_config_.forcing.tau)

    @property
    def tau_info_(self) -> dict:
        return self.resolved_config_.tau_info

    @property
    def bin_size_(self) -> float:
        return self.resolved_config_.bin_size

    @property
    def kind_(self) -> str:
        return self.resolved_config_.kind

    @property
    def collapse_(self) -> str | None:
        return self.history_.collapse

    def _check_fitted(self):
        check_is_fitted(self, "latent_model_", msg=(
            "this DSR estimator is not fitted yet; call fit(observations) first, or load a "
            "fitted one with DSR.load or nwb_dsr.read_dynamics."))

    def _data(self, X) -> Observations:
        self._check_fitted()
        return as_observations(X, bin_size=self.bin_size_, n_channels=self.n_features_in_)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, bin_size=None, validation=None, callback=None) -> "DSR":
        """Fit the model to observations.

        Parameters
        ----------
        X : Observations, or array of shape (n_bins, n_channels), or list of such arrays
            Training data; a list holds one array per trial (no window crosses a trial boundary).
        y : ignored
        bin_size : float, optional
            Bin width in seconds when X is an array (default 1: one time unit per bin).
        validation : Observations or array, optional
            Held-out data for choosing the best model; default: the last
            ``validation_fraction`` of each segment.
        callback : callable, optional
            ``callback(trainer, epoch, seconds)`` after every epoch (see
            :meth:`nwb_dsr.training.Trainer.fit`); its time is not counted. With an ensemble
            it runs for every member in turn; ``trainer.member`` is the member's index.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For a bad setting (named), NaN data, bad shapes, or data shorter than one window.
        """
        data = as_observations(X, bin_size=bin_size)
        val = None if validation is None else as_observations(
            validation, bin_size=data.bin_size, kind=data.kind, n_channels=data.n_channels)
        warm = self.warm_start and hasattr(self, "latent_model_")
        if warm and data.n_channels != self.n_features_in_:
            raise ValueError(f"warm_start needs data with the fitted {self.n_features_in_} "
                             f"channels; got {data.n_channels}.")
        resolved = resolve(self.config(), data, validation=val is not None)
        n_members = 1 if warm else int(resolved.optimization.ensemble)
        restarts = 0 if warm else int(resolved.optimization.restarts)
        budget = resolved.optimization.max_time
        t0 = time.perf_counter()
        fits, chosen, k = [], None, 0
        # the ensemble's members, then one more at a time while the selected one collapsed
        while k < n_members or (chosen["member"]["collapse"] is not None and
                                k < n_members + restarts):
            opt = resolved.optimization
            if budget is not None:  # what is left, shared by the members still to fit
                left = budget - (time.perf_counter() - t0)
                if k >= n_members and left <= 0:
                    break
                opt = dataclasses.replace(opt, max_time=max(left / max(n_members - k, 1),
                                                            1e-3))
            run = dataclasses.replace(resolved.run, seed=member_seed(self.seed, k))
            fitted = self._fit_member(resolved, data, val, opt, run, warm, callback, k)
            fitted["member"]["restart"] = k >= n_members
            fits.append(fitted)
            if chosen is None or _selection_key(fitted["member"]) < _selection_key(
                    chosen["member"]):
                chosen = fitted
            k += 1
        if len(fits) > 1:  # the spread of the members
            for fitted in fits:
                self._member_figures(fitted, resolved)
        members = [fitted["member"] for fitted in fits]
        for m in members:
            m["selected"] = m is chosen["member"]
        for w in chosen["warnings"]:  # those of the other members concern fits not kept
            warnings.warn(w.message, w.category, stacklevel=2)
        self.latent_model_ = chosen["latent"]
        self.observation_model_ = chosen["readout"]
        self.history_ = chosen["history"]
        self.resolved_config_ = resolved
        self.forcing_states_ = chosen["states"]
        self.start_states_ = chosen["starts"]
        self.members_ = members
        self.n_features_in_ = data.n_channels
        self.channel_ids_ = np.asarray(data.ids)
        self.provenance_ = dict(data.provenance)
        self.noise_std_ = self._residual_std(data)
        return self

    def _fit_member(self, resolved, data, val, optimization, run, warm, callback, index):
        """One member of the ensemble: a fit from ``run.seed`` and its figures."""
        torch.manual_seed(run.seed)
        if warm:
            latent, readout = self.latent_model_.train(), self.observation_model_.train()
        else:
            latent, readout = self._build(resolved, seed=run.seed)
            readout.fit_init(data.concatenated())
        f = resolved.forcing
        scheme = make_forcing(f.mode, tau=f.tau, alpha=f.alpha, window=f.seq_len,
                              continuity=f.continuity)
        trainer = Trainer(latent, readout, scheme, optimization, resolved.evaluation, run)
        trainer.member = index
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = trainer.fit(data, val, callback=callback)
        latent.cpu(); readout.cpu()
        latent.eval(); readout.eval()
        states = getattr(scheme, "states", None)
        starts = spread_states(latent, readout, list(data.data), LYAPUNOV_STARTS)
        member = {"member": int(index), "seed": int(run.seed), "score": history.best_score,
                  "D_stsp": None, "D_H": None, "collapse": history.collapse,
                  "epochs": int(history.epochs), "best_epoch": history.best_epoch,
                  "seconds": float(history.seconds), "stopped": history.stopped,
                  "probes_runaway": history.probes_runaway}
        if history.best_epoch is not None and history.best_epoch in history.final_epochs:
            i = history.final_epochs.index(history.best_epoch)
            member.update(D_stsp=history.final_dstsp[i], D_H=history.final_dh[i])
        elif history.best_epoch is not None and history.best_epoch in history.val_epochs:
            i = history.val_epochs.index(history.best_epoch)
            member.update(D_stsp=history.val_dstsp[i], D_H=history.val_dh[i])
        member = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                  for k, v in member.items()}
        return {"latent": latent, "readout": readout, "history": history, "member": member,
                "warnings": list(caught), "validation": trainer.validation_segments,
                "states": None if states is None else states.detach().cpu().numpy(),
                "starts": starts.detach().cpu().double().numpy()}

    @staticmethod
    def _member_figures(fitted: dict, resolved: ResolvedConfig) -> None:
        """λ_max and held-out likelihood of a member, for the spread of several members."""
        from .analysis.lyapunov import lyapunov_spectrum
        latent, readout, member = fitted["latent"], fitted["readout"], fitted["member"]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # as lyapunov_spectrum(estimator): the selected member's λ_max is the estimator's
            lam = lyapunov_spectrum(latent, z0=fitted["starts"], dt=resolved.bin_size)
        held = heldout_likelihood(latent, readout, fitted["validation"],
                                  horizon=int(resolved.forcing.tau))
        for key, v in (("lambda_max", float(lam[0])), ("heldout_loglik", held["loglik"]),
                       ("heldout_bits_per_spike", held["bits_per_spike"])):
            member[key] = v if v is not None and np.isfinite(v) else None

    @staticmethod
    def _build(resolved: ResolvedConfig, seed: int | None = None):
        m, o = resolved.model, resolved.observation
        latent = make_latent_model(m.model, m.latent_dim, hidden_dim=m.hidden_dim,
                                   n_bases=m.n_bases,
                                   seed=resolved.run.seed if seed is None else seed)
        okw = {"link": o.link, "smoothing": resolved.smoothing_bins} \
            if o.observation == "poisson" else {}
        # the read-out sees the M latent units (not state beyond them, e.g. an LSTM's cell)
        readout = make_observation_model(o.observation, resolved.n_channels, latent.latent_dim,
                                          **okw)
        return latent, readout

    @torch.no_grad()
    def _residual_std(self, data: Observations) -> np.ndarray:
        if data.kind == "counts":
            return np.zeros(data.n_channels)
        res = []
        for s in data.data[:50]:
            if s.shape[0] < 2:
                continue
            z = infer_states(self.latent_model_, self.observation_model_, s)
            pred = self.observation_model_.mean(self.latent_model_.step(z[:-1])).numpy()
            res.append(s[1:] - pred)
        return np.concatenate(res).std(0) if res else np.zeros(data.n_channels)

    # ------------------------------------------------------------------ inference
    def transform(self, X) -> list:
        """Forced latent states ẑ_t for every bin: the observation layer's inverse of the data.

        For the Gaussian layer ẑ_t = B⁺(y_t − b); for the Poisson layer ẑ_t is the
        maximum-likelihood latent of the smoothed counts (see
        :meth:`~nwb_dsr.models.observation.PoissonObservation.invert`).

        Returns
        -------
        list of ndarray
            One (n_bins_k, state_dim) array per segment.
        """
        data = self._data(X)
        return [infer_states(self.latent_model_, self.observation_model_, s).numpy()
                for s in data.data]

    def smooth(self, X, channels=None, weight="auto") -> list:
        """Latent trajectories inferred through time: the fitted map as a prior.

        :meth:`transform` inverts each bin on its own; ``smooth`` finds the state trajectory
        that best explains the data together with the fitted dynamics (a MAP smoother,
        :func:`nwb_dsr.models.rollout.smooth_states`), which matters for sparse counts. With
        ``channels`` the data hold only those channels of the fit, and the read-out of the
        result predicts the others: co-smoothing of held-out units with the model's dynamics.

        Parameters
        ----------
        X : Observations, array or list of arrays
            Data, one (n_bins_k, n_channels) array per segment, or only the ``channels``.
        channels : array of int, optional
            Indices of the fit's channels that ``X`` holds (default: all).
        weight : float or "auto", default "auto"
            Weight of the dynamics prior (0: bin by bin, on the raw data); "auto" chooses it
            by cross-validation over the channels (see
            :func:`~nwb_dsr.models.rollout.smooth_states`).

        Returns
        -------
        list of ndarray
            One (n_bins_k, state_dim) array per segment; :meth:`rates_from_states` reads
            them out.

        Examples
        --------
        >>> import numpy as np, nwb_dsr
        >>> counts = np.random.default_rng(0).poisson(1.0, size=(600, 6))
        >>> est = nwb_dsr.DSR(latent_dim=2, hidden_dim=8, epochs=2, tau=5,
        ...                   progress=False).fit(nwb_dsr.Observations(counts, kind="counts"))
        >>> z = est.smooth(counts[:, :4], channels=[0, 1, 2, 3])[0]
        >>> rates = est.rates_from_states(z)[:, 4:]   # the two held-out units
        >>> rates.shape
        (600, 2)
        """
        self._check_fitted()
        n = self.n_features_in_ if channels is None else len(np.asarray(channels).ravel())
        if channels is not None:
            channels = np.asarray(channels).ravel()
            if channels.dtype.kind not in "iu" or channels.size == 0 or \
                    channels.min() < 0 or channels.max() >= self.n_features_in_ or \
                    len(np.unique(channels)) != channels.size:
                raise ValueError(f"channels must be distinct indices of the fit's "
                                 f"{self.n_features_in_} channels; got {channels.tolist()}.")
        data = as_observations(X, bin_size=self.bin_size_, n_channels=n)
        return [z.numpy() for z in smooth_states(self.latent_model_, self.observation_model_,
                                                 list(data.data), rows=channels,
                                                 weight=weight)]

    @torch.no_grad()
    def rates_from_states(self, Z) -> np.ndarray:
        """Expected observations (counts per bin, or signal in data units) of states
        (n_bins, state_dim), e.g. from :meth:`transform` or :meth:`smooth`."""
        self._check_fitted()
        Z = torch.as_tensor(np.asarray(Z), dtype=self.observation_model_.B.dtype)
        return self.observation_model_.mean(Z).numpy().astype(np.float64)

    @torch.no_grad()
    def predict(self, X, n_ahead: int = 1) -> list:
        """Expected observations (rates or means) predicted ``n_ahead`` bins ahead.

        Bin t is predicted from the forced state at t − n_ahead; the first ``n_ahead`` bins of
        each segment are read out from their own forced states.

        Returns
        -------
        list of ndarray
            One (n_bins_k, n_channels) array per segment, in data units (counts per bin for
            Poisson).
        """
        if isinstance(n_ahead, bool) or int(n_ahead) < 0:
            raise ValueError(f"n_ahead must be >= 0; got {n_ahead!r}.")
        data = self._data(X)
        out = []
        for s in data.data:
            z = infer_states(self.latent_model_, self.observation_model_, s)
            zp = z.clone()
            if n_ahead > 0 and len(z) > n_ahead:
                w = z[:-n_ahead]
                for _ in range(int(n_ahead)):
                    w = self.latent_model_.step(w)
                zp[n_ahead:] = w
            out.append(self.observation_model_.mean(zp).numpy().astype(np.float64))
        return out

    @torch.no_grad()
    def generate(self, n_steps: int, x0=None, *, z0=None, burn_in: int = 0,
                 return_latent: bool = False, sample: bool = False, seed: int | None = None):
        """Run the fitted dynamics freely.

        Parameters
        ----------
        n_steps : int
            Number of steps to return.
        x0 : array of shape (n_channels,) or (n_bins, n_channels), optional
            Data to start from: the forced state of its last bin is the initial state
            (with counts, pass several bins so that smoothing has context).
        z0 : array of shape (state_dim,), optional
            Initial latent state (instead of x0). Default: the first of ``start_states_``
            (states of the training data, the first bin's first) whose run stays finite, or the
            first when none does; for a model saved without them, the forced state of the
            read-out's offset b (the mean activity).
        burn_in : int
            Steps run and discarded before the returned ones.
        return_latent : bool
            Also return the latent trajectory.
        sample : bool
            Draw observations (Poisson counts, or Gaussian noise with ``noise_std_``) instead of
            returning expected values.
        seed : int, optional
            Seed of the sampling (default: the estimator's seed).

        Returns
        -------
        x : ndarray, shape (n_steps, n_channels)
        z : ndarray, shape (n_steps, state_dim)
            Only with ``return_latent=True``.
        """
        self._check_fitted()
        if isinstance(n_steps, bool) or int(n_steps) < 1:
            raise ValueError(f"n_steps must be a positive integer; got {n_steps!r}.")
        lat, readout = self.latent_model_, self.observation_model_
        if z0 is not None:
            z = torch.as_tensor(np.asarray(z0, dtype=np.float32).reshape(1, -1))
            if z.shape[1] != lat.state_dim:
                raise ValueError(f"z0 must have {lat.state_dim} entries; got {z.shape[1]}.")
        elif x0 is None:
            starts = getattr(self, "start_states_", None)
            z = (mean_state(lat, readout) if starts is None else
                 torch.as_tensor(np.asarray(starts, dtype=np.float32)))
        else:
            x0 = np.asarray(x0, dtype=np.float64).reshape(-1, self.n_features_in_)
            z = infer_states(lat, readout, x0)[-1:]
        for k in range(len(z)):  # the first start whose run stays finite (else the first)
            Z = free_run(lat, z[k:k + 1], int(n_steps) + int(burn_in))[0, int(burn_in):]
            if k == 0:
                first = Z
            if bool(torch.isfinite(Z).all()):
                break
        else:
            Z = first
        x = readout.mean(Z).numpy().astype(np.float64)
        if sample:
            rng = np.random.default_rng(self.seed if seed is None else seed)
            if readout.name == "poisson":
                x = rng.poisson(np.clip(x, 0, 1e6)).astype(np.float64)
            else:
                x = x + rng.standard_normal(x.shape) * self.noise_std_
        return (x, Z.numpy()) if return_latent else x

    def evaluation_protocol(self, **overrides) -> EvaluationProtocol:
        """The :class:`~nwb_dsr.protocol.EvaluationProtocol` of this fit: the one validation
        used (run length, weight, seed), with ``overrides`` of its fields.
        """
        self._check_fitted()
        protocol = EvaluationProtocol.from_config(self.resolved_config_.evaluation,
                                                  seed=int(self.seed))
        return dataclasses.replace(protocol, **overrides)

    def score(self, X, y=None) -> float:
        """Negative model-selection score of a free run against X (higher is better).

        The number that validation minimises during training, D_stsp + dh_weight·D_H, computed
        by the evaluation protocol (:mod:`nwb_dsr.protocol`) on X; a collapsed run carries the
        protocol's penalty (−inf when it explodes).
        """
        data = self._data(X)
        res = self.evaluation_protocol().evaluate(self.latent_model_, self.observation_model_,
                                                  data.data)
        return -float(res.score)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict, dict]:
        """The fitted model as (JSON-able config, {name: ndarray} parameters)."""
        self._check_fitted()
        from . import __version__
        params = {f"latent.{k}": v.detach().cpu().numpy()
                  for k, v in self.latent_model_.state_dict().items()}
        params.update({f"observation.{k}": v.detach().cpu().numpy()
                       for k, v in self.observation_model_.state_dict().items()})
        params["noise_std"] = np.asarray(self.noise_std_, dtype=np.float64)
        if getattr(self, "start_states_", None) is not None:
            params["start_states"] = np.asarray(self.start_states_, dtype=np.float64)
        ids = np.asarray(self.channel_ids_)
        config = {
            "format": STATE_FORMAT,
            "package_version": __version__,
            "params": jsonable(self.get_params()),
            "resolved": jsonable(self.resolved_config_.to_dict()),
            "latent": self.latent_model_.config(),
            "observation": self.observation_model_.config(),
            "channel_ids": ids.tolist() if ids.dtype.kind in "iufUSb" else [str(i) for i in ids],
            "history": jsonable(self.history_.to_dict()),
            "members": jsonable(getattr(self, "members_", [])),
            "provenance": jsonable(self.provenance_),
        }
        return config, params

    @classmethod
    def from_state(cls, config: dict, params: dict) -> "DSR":
        """Rebuild a fitted estimator from :meth:`to_state` output (any stored format)."""
        fmt = str(config.get("format", ""))
        if not fmt.startswith("nwb_dsr.DSR/"):
            raise ValueError("this is not an nwb_dsr model state (missing 'format': "
                             "'nwb_dsr.DSR/N').")
        if fmt == "nwb_dsr.DSR/1":
            config = _upgrade_state_v1(config)
        known = DSRConfig.defaults()
        est = cls(**{k: v for k, v in config["params"].items() if k in known})
        lc = dict(config["latent"])
        latent = make_latent_model(lc.pop("name"), lc.pop("latent_dim"), **lc)
        oc = dict(config["observation"])
        readout = make_observation_model(oc.pop("name"), oc.pop("n_obs"), oc.pop("latent_dim"),
                                         **oc)
        for prefix, mod in (("latent.", latent), ("observation.", readout)):
            sd = {k[len(prefix):]: torch.as_tensor(np.asarray(v)) for k, v in params.items()
                  if k.startswith(prefix)}
            ref = mod.state_dict()
            sd = {k: v.to(ref[k].dtype) for k, v in sd.items() if k in ref}
            missing = set(ref) - set(sd)
            if missing:
                raise ValueError(f"the stored model lacks parameters {sorted(missing)}; the file "
                                 "is incomplete or was written by an incompatible version.")
            mod.load_state_dict(sd)
        est.latent_model_ = latent.eval()
        est.observation_model_ = readout.eval()
        est.history_ = TrainingHistory.from_dict(config.get("history", {}))
        est.members_ = [dict(m) for m in config.get("members", [])]
        est.resolved_config_ = ResolvedConfig.from_dict(config["resolved"])
        est.forcing_states_ = None
        est.n_features_in_ = int(est.resolved_config_.n_channels)
        est.channel_ids_ = np.asarray(config["channel_ids"])
        est.provenance_ = dict(config.get("provenance", {}))
        est.noise_std_ = np.asarray(params.get("noise_std", np.zeros(est.n_features_in_)))
        starts = params.get("start_states")  # absent in files written before they were kept
        est.start_states_ = (None if starts is None else
                             np.asarray(starts, dtype=np.float64).reshape(-1, latent.state_dim))
        return est

    def save(self, path) -> Path:
        """Save the fitted model as one ``.npz`` file of arrays plus a JSON config (no pickles).

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from nwb_dsr import DSR
        >>> x = np.random.default_rng(0).normal(size=(600, 2)).cumsum(0) * 0.05
        >>> est = DSR(latent_dim=2, hidden_dim=8, tau=5, epochs=1, progress=False).fit(x)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = est.save(os.path.join(d, "model.npz"))
        ...     np.allclose(DSR.load(p).generate(10), est.generate(10))
        True
        """
        config, params = self.to_state()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        blob = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
        np.savez(path, __config__=blob, **params)
        return path

    @classmethod
    def load(cls, path) -> "DSR":
        """Load a model written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no model file at {path}.")
        try:
            with np.load(path, allow_pickle=False) as f:
                config = json.loads(bytes(f["__config__"]).decode("utf-8"))
                params = {k: f[k] for k in f.files if k != "__config__"}
        except (ValueError, KeyError, OSError) as err:
            raise ValueError(f"{path} is not a model file written by DSR.save ({err}).") from err
        return cls.from_state(config, params)


DSR.__init__.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
       for k, v in DSRConfig.defaults().items()])


def _upgrade_state_v1(config: dict) -> dict:
    """A state written before the one-configuration format (``nwb_dsr.DSR/1``), upgraded."""
    est, trainer = dict(config["estimator"]), dict(config.get("trainer", {}))
    shooting = est.pop("shooting", False)
    if shooting is True:
        est["mode"] = "shooting"
    elif shooting == "auto" and est.get("mode", "sparse") == "sparse":
        est["mode"] = "auto"
    mode = "shooting" if trainer.get("shooting") else trainer.get("mode", "sparse")
    scheme = FORCING_SCHEMES[mode]
    tau = int(config["tau"])
    oc, lc = config["observation"], config["latent"]
    kind = config["kind"]
    resolved = {name: {} for name in ("model", "observation", "forcing", "optimization",
                                      "evaluation", "run")}
    flat = {**DSRConfig.defaults(), **{k: v for k, v in est.items()
                                       if k in DSRConfig.defaults()}}
    flat.update(mode=mode, tau=tau, latent_dim=int(lc["latent_dim"]),
                observation=oc["name"],
                alpha=float(trainer.get("alpha") or scheme.default_alpha),
                seq_len=int(trainer.get("seq_len") or scheme.default_window(tau)),
                grad_clip=trainer.get("grad_clip") or scheme.default_clip)
    for name, (section, _) in DSRConfig.settings().items():
        resolved[section][name] = flat[name]
    resolved["data"] = {"kind": kind, "bin_size": float(config["bin_size"]),
                        "n_channels": int(config["n_channels"]),
                        "smoothing_bins": float(oc.get("smoothing", 0.0))
                        if oc["name"] == "poisson" else 0.0,
                        "tau_info": dict(config.get("tau_info") or {})}
    return {**config, "format": STATE_FORMAT, "params": {**est}, "resolved": resolved}
