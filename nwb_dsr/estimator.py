"""A scikit-learn-style estimator over the sparse-forcing trainer: :class:`DSR`."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .analysis.collapse import CollapseWarning, describe_collapse
from .models.latent import LATENT_MODELS, make_latent_model
from .models.observation import make_observation_model
from .observations import Observations
from .training.trainer import Trainer, TrainerConfig, TrainingHistory, _pad_state, free_run
from ._json import jsonable as _jsonable

__all__ = ["DSR", "NotFittedError", "as_observations", "COUNTS_TAU_FRACTION", "CollapseWarning"]

#: ``tau="auto"`` on spike counts and on field potentials prepared by ``read_lfp``: this
#: fraction of the predictability time ln 2 / λ_max.
COUNTS_TAU_FRACTION = 0.25


def _field_potential(obs) -> bool:
    """Whether ``obs`` is a recorded field potential prepared by read_lfp's preprocessing."""
    pre = (getattr(obs, "provenance", None) or {}).get("preprocess") or {}
    return bool(getattr(obs, "kind", None) == "continuous" and pre.get("enabled"))


def _data_dimension(obs, variance=None, cap: int = 16) -> int:
    """Principal components needed to explain ``variance`` (default
    :data:`nwb_dsr.io.preprocess.PCA_VARIANCE`) of the channels' variance, at most ``cap``."""
    from .io.preprocess import PCA_VARIANCE
    x = obs.concatenated()
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    ev = np.cumsum(sv ** 2) / max(float(np.sum(sv ** 2)), 1e-300)
    k = int(np.searchsorted(ev, PCA_VARIANCE if variance is None else variance) + 1)
    return int(min(max(k, 1), cap, obs.n_channels))


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted model is called before :meth:`DSR.fit`."""


def as_observations(X, bin_size=None, kind=None) -> Observations:
    """Coerce Observations, one (n_bins, n_channels) array or a list of them to Observations."""
    if isinstance(X, Observations):
        return X
    if isinstance(X, np.ndarray) or isinstance(X, (list, tuple)):
        return Observations.from_array(list(X) if isinstance(X, (list, tuple)) else X,
                                       bin_size=1.0 if bin_size is None else bin_size, kind=kind)
    raise TypeError(f"X must be an Observations object or a (n_bins, n_channels) array (or a list "
                    f"of them); got {type(X).__name__}. NWB files are read with nwb_dsr.read_units "
                    "or nwb_dsr.read_lfp.")


_ESTIMATOR_PARAMS = (
    "model", "latent_dim", "hidden_dim", "n_bases", "observation", "link", "smoothing", "tau",
    "mode", "alpha", "seq_len", "batch_size", "batches_per_epoch", "lr", "lr_final", "optimizer",
    "schedule", "epochs", "max_time", "grad_clip", "validation_fraction", "eval_every", "patience",
    "shooting", "continuity", "device", "seed", "progress", "warm_start")


class DSR:
    """Dynamical-systems reconstruction by a latent RNN trained with sparsely forced BPTT.

    Parameters
    ----------
    model : str
        Latent map: ``"shallow_plrnn"``, ``"clipped_shallow_plrnn"``, ``"plrnn"``,
        ``"dendritic_plrnn"``, ``"lstm"`` or ``"rnn"``; ``"auto"`` (default) is the clipped
        shallow PLRNN for field potentials prepared by :func:`nwb_dsr.read_lfp` (its bounded
        non-linearity keeps the free run of a model fitted to noisy recordings from exploding)
        and the shallow PLRNN otherwise.
    latent_dim : int or None
        Latent size M; default: the number of channels for continuous data (at most 16), and 3 for
        counts (at most the number of units). For field potentials prepared by
        :func:`nwb_dsr.read_lfp`: the data's dimension, the number of principal components that
        explain 95 % of the channels' variance (at most 16).
    hidden_dim : int
        Hidden width of the shallow PLRNNs.
    n_bases : int
        Number of bases of the dendritic PLRNN.
    observation : {"auto", "gaussian", "poisson"}
        Output layer; ``"auto"`` picks Poisson for counts and Gaussian for continuous data.
    link : {"exp", "softplus"}
        Link of the Poisson layer.
    smoothing : float
        Width σ in seconds of the Gaussian kernel applied to spike counts before the Poisson
        layer is inverted to get the forcing signal (default 0.05 s). In bins it is
        ``smoothing / bin_size``, at least one bin; 0 turns smoothing off.
    tau : int or "auto"
        Forcing interval in bins; ``"auto"`` (default, as in the CLI) uses τ_pred = ln 2 /
        λ_max of the data, and for spike counts a quarter of it (``COUNTS_TAU_FRACTION``): with
        the noisy forcing signal of counts, longer free-running stretches let the fitted map
        collapse onto a fixed point (``benchmarks/spikes_vs_gpfa.py``); the same holds for
        field potentials prepared by :func:`nwb_dsr.read_lfp`, fitted with learned forcing
        states as counts are (``benchmarks/lfp_real.py --lorenz``: with τ = τ_pred the fit of
        a Lorenz-driven LFP settles on a fixed point). For continuous data τ
        is at least half the signal's own time scale (its dominant period, else its
        autocorrelation time), since measurement noise inflates λ_max; ``tau_info_`` records
        how τ was obtained (:func:`nwb_dsr.analysis.lyapunov.choose_tau`).
    mode : {"sparse", "gtf", "bptt"}
        Sparse forcing, generalized teacher forcing (``alpha``), or the clipped-BPTT baseline.
    shooting : bool or "auto"
        Learn the forcing states jointly with the model (multiple shooting, see
        :class:`nwb_dsr.training.TrainerConfig`); ``"auto"`` turns it on with sparse forcing
        for the Poisson layer, where the states inferred from smoothed counts are noisy, and
        for recorded field potentials prepared by :func:`nwb_dsr.read_lfp` (its
        ``provenance["preprocess"]``), whose measurement noise likewise biases a map fitted to
        data-inferred states towards contraction, so that its free run collapses onto a fixed
        point.
    alpha, seq_len, batch_size, batches_per_epoch, lr, lr_final, optimizer, schedule, epochs, \
max_time, grad_clip, validation_fraction, eval_every, patience, continuity
        Training settings, see :class:`nwb_dsr.training.TrainerConfig`.
    device : {"cpu", "cuda", "auto"}
    seed : int
        Seed of initialisation, window sampling and generation.
    progress : bool
        Show a progress bar while fitting.
    warm_start : bool
        When fitting an already fitted estimator again, continue from its parameters (resume
        training, e.g. with more data or a new ``max_time``) instead of re-initialising.

    Attributes
    ----------
    latent_model_ : LatentModel
    observation_model_ : ObservationModel
    history_ : TrainingHistory
    tau_ : int
        Forcing interval used (bins).
    tau_info_ : dict
        How ``tau_`` was obtained (``{"method": "fixed"}`` or the λ_max estimate).
    bin_size_ : float
    kind_ : str
    n_features_in_ : int
    channel_ids_ : ndarray
    noise_std_ : ndarray
        Residual standard deviation per channel (Gaussian layer), used when sampling.
    collapse_ : str or None
        Why the selected model's free run collapsed on the validation data
        (``"fixed_point"``, ``"exploding"`` or ``"non_finite"``, see
        :func:`nwb_dsr.analysis.collapse.detect_collapse`), or None. Model selection prefers
        any checkpoint that did not collapse; when every one did, :meth:`fit` warns with a
        :class:`CollapseWarning`.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import DSR
    >>> t = np.arange(4000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], axis=1)
    >>> est = DSR(latent_dim=2, hidden_dim=16, tau=10, epochs=3, progress=False).fit(x, bin_size=0.05)
    >>> est.generate(100).shape
    (100, 2)
    """

    def __init__(self, model="auto", latent_dim=None, hidden_dim=64, n_bases=8,
                 observation="auto", link="exp", smoothing=0.05, tau="auto", mode="sparse",
                 alpha=None,
                 seq_len=None, batch_size=256, batches_per_epoch=50, lr=3e-3, lr_final=1e-4,
                 optimizer="adam", schedule="exponential", epochs=200, max_time=None,
                 grad_clip=None, validation_fraction=0.1, eval_every=5, patience=None,
                 shooting="auto", continuity=1.0, device="cpu", seed=0, progress=True,
                 warm_start=False):
        self.model = model
        self.latent_dim = latent_dim
        self.hidden_dim = hidden_dim
        self.n_bases = n_bases
        self.observation = observation
        self.link = link
        self.smoothing = smoothing
        self.tau = tau
        self.mode = mode
        self.alpha = alpha
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.lr = lr
        self.lr_final = lr_final
        self.optimizer = optimizer
        self.schedule = schedule
        self.epochs = epochs
        self.max_time = max_time
        self.grad_clip = grad_clip
        self.validation_fraction = validation_fraction
        self.eval_every = eval_every
        self.patience = patience
        self.shooting = shooting
        self.continuity = continuity
        self.device = device
        self.seed = seed
        self.progress = progress
        self.warm_start = warm_start

    # ------------------------------------------------------------------ sklearn API
    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters as a dict."""
        return {k: getattr(self, k) for k in _ESTIMATOR_PARAMS}

    def set_params(self, **params) -> "DSR":
        """Set constructor parameters; unknown names raise ValueError."""
        for k, v in params.items():
            if k not in _ESTIMATOR_PARAMS:
                raise ValueError(f"unknown parameter {k!r}; valid ones are {list(_ESTIMATOR_PARAMS)}.")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = DSR().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return "DSR(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _check_fitted(self):
        if not hasattr(self, "latent_model_"):
            raise NotFittedError("this DSR estimator is not fitted yet; call fit(observations) "
                                 "first, or load a fitted one with DSR.load or nwb_dsr.read_dynamics.")

    def _default_latent_dim(self, obs: Observations) -> int:
        if self.latent_dim is not None:
            if isinstance(self.latent_dim, bool) or int(self.latent_dim) < 1:
                raise ValueError(f"latent_dim must be a positive integer; got {self.latent_dim!r}.")
            return int(self.latent_dim)
        if obs.kind == "counts":
            # population activity: a few latent dimensions; directions the counts do not pin
            # down let the free run drift or diverge
            return int(min(3, obs.n_channels))
        if _field_potential(obs):
            return _data_dimension(obs)
        return int(min(obs.n_channels, 16))

    def _smoothing_bins(self, bin_size: float) -> float:
        """The counts' smoothing kernel width in bins (``smoothing`` is in seconds)."""
        s = self.smoothing
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) \
                or not np.isfinite(s) or s < 0:
            raise ValueError(f"smoothing must be a width in seconds >= 0; got {s!r}.")
        return 0.0 if s == 0 else max(float(s) / float(bin_size), 1.0)

    def _resolve_shooting(self, obs_name: str, obs=None) -> bool:
        if self.shooting == "auto":
            return self.mode == "sparse" and (obs_name == "poisson" or _field_potential(obs))
        if not isinstance(self.shooting, (bool, np.bool_)):
            raise ValueError(f"shooting must be True, False or 'auto'; got {self.shooting!r}.")
        return bool(self.shooting)

    def _resolve_tau(self, obs: Observations):
        if isinstance(self.tau, str):
            if self.tau != "auto":
                raise ValueError(f"tau must be a positive integer or 'auto'; got {self.tau!r}.")
            from .analysis.lyapunov import choose_tau
            if obs.kind == "counts":
                return choose_tau(obs, smooth=self._smoothing_bins(obs.bin_size),
                                  fraction=COUNTS_TAU_FRACTION)
            if _field_potential(obs):  # noisy as counts are, and fitted with learned states
                return choose_tau(obs, fraction=COUNTS_TAU_FRACTION)
            return choose_tau(obs)
        if isinstance(self.tau, bool) or not isinstance(self.tau, (int, np.integer)) or self.tau < 1:
            raise ValueError(f"tau must be an integer number of bins >= 1 or 'auto'; got {self.tau!r}.")
        return int(self.tau), {"method": "fixed", "tau": int(self.tau)}

    def fit(self, X, y=None, *, bin_size=None, validation=None, callback=None) -> "DSR":
        """Fit the model to observations.

        Parameters
        ----------
        X : Observations, or array of shape (n_bins, n_channels), or list of such arrays
            Training data; a list holds one array per trial (no window crosses a trial boundary).
        y : ignored
        bin_size : float, optional
            Bin width in seconds when X is an array (default 1).
        validation : Observations or array, optional
            Held-out data for choosing the best model; default: the last
            ``validation_fraction`` of each segment.
        callback : callable, optional
            ``callback(trainer, epoch, seconds)`` after every epoch (see
            :meth:`nwb_dsr.training.Trainer.fit`); its time is not counted.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For NaN data, bad shapes, ``tau`` < 1, or data shorter than one training window.
        """
        obs = as_observations(X, bin_size=bin_size)
        val = None if validation is None else as_observations(validation, bin_size=obs.bin_size,
                                                              kind=obs.kind)
        if val is not None and val.n_channels != obs.n_channels:
            raise ValueError(f"validation has {val.n_channels} channels but X has {obs.n_channels}.")
        model = self.model
        if model == "auto":
            model = "clipped_shallow_plrnn" if _field_potential(obs) else "shallow_plrnn"
        if model not in LATENT_MODELS:
            raise ValueError(f"model must be one of {sorted(LATENT_MODELS)} or 'auto'; got "
                             f"{self.model!r}.")
        obs_name = self.observation
        if obs_name == "auto":
            obs_name = "poisson" if obs.kind == "counts" else "gaussian"
        if obs_name not in ("gaussian", "poisson"):
            raise ValueError(f"observation must be 'auto', 'gaussian' or 'poisson'; got {obs_name!r}.")
        if obs_name == "poisson" and obs.kind != "counts":
            raise ValueError("observation='poisson' needs spike counts (kind='counts'); these data "
                             "are continuous. Use observation='gaussian'.")
        cfg = TrainerConfig(mode=self.mode, tau=1, alpha=self.alpha, seq_len=self.seq_len,
                            batch_size=self.batch_size, batches_per_epoch=self.batches_per_epoch,
                            lr=self.lr, lr_final=self.lr_final, optimizer=self.optimizer,
                            schedule=self.schedule, epochs=self.epochs, max_time=self.max_time,
                            grad_clip=self.grad_clip, validation_fraction=self.validation_fraction,
                            eval_every=self.eval_every, patience=self.patience,
                            shooting=self._resolve_shooting(obs_name, obs),
                            continuity=self.continuity, seed=self.seed,
                            device=self.device, progress=self.progress).validate()
        self._default_latent_dim(obs)  # settings fail before tau="auto" estimates λ_max
        tau, tau_info = self._resolve_tau(obs)
        cfg.tau = tau
        torch.manual_seed(self.seed)
        if self.warm_start and hasattr(self, "latent_model_"):
            if obs.n_channels != self.n_features_in_:
                raise ValueError(f"warm_start needs data with the fitted {self.n_features_in_} "
                                 f"channels; got {obs.n_channels}.")
            latent, observation = self.latent_model_.train(), self.observation_model_.train()
        else:
            M = self._default_latent_dim(obs)
            latent = make_latent_model(model, M, hidden_dim=self.hidden_dim,
                                       n_bases=self.n_bases, seed=self.seed)
            okw = {"link": self.link, "smoothing": self._smoothing_bins(obs.bin_size)} \
                if obs_name == "poisson" else {}
            observation = make_observation_model(obs_name, obs.n_channels, latent.state_dim, **okw)
            observation.fit_init(obs.concatenated())
        trainer = Trainer(latent, observation, cfg)
        history = trainer.fit(obs, val, callback=callback)
        latent.cpu(); observation.cpu()
        self.latent_model_ = latent.eval()
        self.observation_model_ = observation.eval()
        self.history_ = history
        self.trainer_config_ = cfg.to_dict()
        self.tau_, self.tau_info_ = tau, tau_info
        self.bin_size_ = obs.bin_size
        self.kind_ = obs.kind
        self.n_features_in_ = obs.n_channels
        self.channel_ids_ = np.asarray(obs.ids)
        self.provenance_ = dict(obs.provenance)
        self.noise_std_ = self._residual_std(obs)
        self.collapse_ = history.collapse or None
        if self.collapse_:
            warnings.warn(f"{describe_collapse(self.collapse_)} at every validation of this fit, "
                          "so the model does not reproduce the data's dynamics although its "
                          "one-step predictions may look good. Try tau='auto', a longer "
                          "max_time, another seed, or shooting=True.", CollapseWarning,
                          stacklevel=2)
        return self

    # ------------------------------------------------------------------ inference
    def _check_obs(self, X) -> Observations:
        obs = as_observations(X, bin_size=getattr(self, "bin_size_", None))
        if obs.n_channels != self.n_features_in_:
            raise ValueError(f"X has {obs.n_channels} channels but the model was fitted on "
                             f"{self.n_features_in_}.")
        return obs

    @torch.no_grad()
    def _zhat(self, x: np.ndarray) -> torch.Tensor:
        o = self.observation_model_
        y = torch.as_tensor(o.forcing_target(x))
        return _pad_state(o.invert(y), self.latent_model_.state_dim)

    @torch.no_grad()
    def _residual_std(self, obs: Observations) -> np.ndarray:
        if obs.kind == "counts":
            return np.zeros(obs.n_channels)
        res = []
        for s in obs.data[:50]:
            if s.shape[0] < 2:
                continue
            z = self._zhat(s)
            pred = self.observation_model_.mean(self.latent_model_.step(z[:-1])).numpy()
            res.append(s[1:] - pred)
        return np.concatenate(res).std(0) if res else np.zeros(obs.n_channels)

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
        self._check_fitted()
        obs = self._check_obs(X)
        return [self._zhat(s).numpy() for s in obs.data]

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
        self._check_fitted()
        if int(n_ahead) < 0:
            raise ValueError(f"n_ahead must be >= 0; got {n_ahead!r}.")
        obs = self._check_obs(X)
        out = []
        for s in obs.data:
            z = self._zhat(s)
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
            Initial latent state (instead of x0). Default: the forced state of the first
            training bin's mean activity, i.e. B⁺(mean − b).
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
        if z0 is not None:
            z = torch.as_tensor(np.asarray(z0, dtype=np.float32).reshape(1, -1))
            if z.shape[1] != self.latent_model_.state_dim:
                raise ValueError(f"z0 must have {self.latent_model_.state_dim} entries; got {z.shape[1]}.")
        else:
            if x0 is None:
                b = self.observation_model_.b.detach()
                z = _pad_state(self.observation_model_.invert(b[None]), self.latent_model_.state_dim)
            else:
                x0 = np.asarray(x0, dtype=np.float64).reshape(-1, self.n_features_in_)
                z = self._zhat(x0)[-1:]
        Z = free_run(self.latent_model_, z, int(n_steps) + int(burn_in))[0, int(burn_in):]
        x = self.observation_model_.mean(Z).numpy().astype(np.float64)
        if sample:
            rng = np.random.default_rng(self.seed if seed is None else seed)
            if self.observation_model_.name == "poisson":
                x = rng.poisson(np.clip(x, 0, 1e6)).astype(np.float64)
            else:
                x = x + rng.standard_normal(x.shape) * self.noise_std_
        return (x, Z.numpy()) if return_latent else x

    def score(self, X, n_steps: int | None = None) -> float:
        """Negative state-space divergence (higher is better) of a free run against X.

        The free run starts from the forced state at the first bin of X and runs 1.25·T steps,
        the first 0.25·T being discarded; both series are compared in the read-out's forcing
        space on up to 3 principal components of X.
        """
        from .analysis.metrics import state_space_divergence
        self._check_fitted()
        obs = self._check_obs(X)
        o = self.observation_model_
        ref = np.concatenate([o.forcing_target(s) for s in obs.data]).astype(np.float64)
        T = int(n_steps or len(ref))
        with torch.no_grad():
            z0 = self._zhat(obs.data[0])[:1]
            Z = free_run(self.latent_model_, z0, T + T // 4)[0, T // 4:]
            gen = o.linear(Z).numpy().astype(np.float64)
        mu = ref.mean(0)
        _, _, vt = np.linalg.svd(ref - mu, full_matrices=False)
        P = vt[:min(3, vt.shape[0])].T
        return -state_space_divergence((ref - mu) @ P, (gen - mu) @ P)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict, dict]:
        """The fitted model as (JSON-able config, {name: ndarray} parameters)."""
        self._check_fitted()
        from . import __version__
        params = {f"latent.{k}": v.detach().cpu().numpy() for k, v in self.latent_model_.state_dict().items()}
        params.update({f"observation.{k}": v.detach().cpu().numpy()
                       for k, v in self.observation_model_.state_dict().items()})
        params["noise_std"] = np.asarray(self.noise_std_, dtype=np.float64)
        ids = np.asarray(self.channel_ids_)
        config = {
            "format": "nwb_dsr.DSR/1",
            "package_version": __version__,
            "estimator": self.get_params(),
            "latent": self.latent_model_.config(),
            "observation": self.observation_model_.config(),
            "trainer": self.trainer_config_,
            "tau": int(self.tau_), "tau_info": _jsonable(self.tau_info_),
            "bin_size": float(self.bin_size_), "kind": self.kind_,
            "n_channels": int(self.n_features_in_),
            "channel_ids": ids.tolist() if ids.dtype.kind in "iufUSb" else [str(i) for i in ids],
            "history": _jsonable(self.history_.to_dict()),
            "provenance": _jsonable(self.provenance_),
        }
        return config, params

    @classmethod
    def from_state(cls, config: dict, params: dict) -> "DSR":
        """Rebuild a fitted estimator from :meth:`to_state` output."""
        if not str(config.get("format", "")).startswith("nwb_dsr.DSR/"):
            raise ValueError("this is not an nwb_dsr model state (missing 'format': 'nwb_dsr.DSR/1').")
        est = cls(**config["estimator"])
        lc = dict(config["latent"])
        latent = make_latent_model(lc.pop("name"), lc.pop("latent_dim"), **lc)
        oc = dict(config["observation"])
        observation = make_observation_model(oc.pop("name"), oc.pop("n_obs"), oc.pop("latent_dim"), **oc)
        for prefix, mod in (("latent.", latent), ("observation.", observation)):
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
        est.observation_model_ = observation.eval()
        h = TrainingHistory(**{k: v for k, v in config.get("history", {}).items()
                               if k in TrainingHistory.__dataclass_fields__})
        est.history_ = h
        est.collapse_ = h.collapse or None
        est.trainer_config_ = dict(config.get("trainer", {}))
        est.tau_, est.tau_info_ = int(config["tau"]), dict(config.get("tau_info", {}))
        est.bin_size_ = float(config["bin_size"])
        est.kind_ = config["kind"]
        est.n_features_in_ = int(config["n_channels"])
        est.channel_ids_ = np.asarray(config["channel_ids"])
        est.provenance_ = dict(config.get("provenance", {}))
        est.noise_std_ = np.asarray(params.get("noise_std", np.zeros(est.n_features_in_)))
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
