"""Sparsely forced BPTT, generalized teacher forcing, and the clipped-BPTT baseline.

Sparse forcing (Mikhaeil, Monfared & Durstewitz, NeurIPS 2022): along a training window the
latent state is replaced by the data-inferred state ẑ_t = B⁺(y_t − b) at t ∈ {0, τ, 2τ, …}
(0-based), the loss being taken on the prediction made before each reset. Generalized teacher
forcing (Hess et al., ICML 2023) mixes z_t ← (1 − α) F(z_{t−1}) + α ẑ_t at every step. The
baseline forces only the initial state and back-propagates through the whole window with
gradient-norm clipping. Forcing is used in training only; generation runs freely.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..analysis.collapse import detect_collapse
from ..analysis.metrics import power_spectrum_distance, state_space_divergence
from ..models.latent import LatentModel
from ..models.observation import ObservationModel
from ..observations import Observations

__all__ = ["TrainerConfig", "Trainer", "TrainingDivergedWarning", "free_run", "resolve_device"]

MODES = ("sparse", "gtf", "bptt")
#: Collapse is checked on a free run of at least this many steps (after the transient), so that
#: a slow divergence shows even when the scored run is short.
COLLAPSE_STEPS = 5000
#: ... from this many evenly spaced points of the held-back data.
COLLAPSE_STARTS = 6
#: Added to the validation score of a checkpoint whose free run collapsed, so that any
#: checkpoint that did not collapse is selected before it.
COLLAPSE_PENALTY = 1e6


class TrainingDivergedWarning(RuntimeWarning):
    """Training stopped because the loss became NaN or diverged; the last good state was kept."""


@dataclass
class TrainerConfig:
    """Everything that controls one training run (see :class:`Trainer`).

    Parameters
    ----------
    mode : {"sparse", "gtf", "bptt"}
        Sparse teacher forcing every ``tau`` steps, generalized teacher forcing with ``alpha``,
        or the baseline (initial state forced only, clipped BPTT over the window).
    tau : int
        Forcing interval in bins (``mode="sparse"``), >= 1.
    alpha : float or None
        Forcing strength in (0, 1]: at a forcing step the state becomes z + α (ẑ − B⁺B z),
        i.e. (1 − α) z + α ẑ when the read-out sees the whole state (see :meth:`Trainer.rollout`).
        Default None: 1 for ``mode="sparse"`` (the state is replaced by ẑ every ``tau`` steps)
        and 0.1 for ``mode="gtf"`` (mixed at every step). A sparse α < 1 keeps part of the
        model's own prediction at each reset, which averages the noise of a forcing signal
        estimated from spike counts over successive resets; the first state of a window is
        always ẑ.
    seq_len : int or None
        Window length in steps; default ``tau`` (sparse: one forcing interval per window,
        equivalent to longer windows since each reset replaces the state), 100 (gtf),
        200 (bptt).
    batch_size : int
        Windows per gradient step.
    batches_per_epoch : int
        Gradient steps per epoch.
    lr, lr_final : float
        Initial learning rate and the rate at the end of training (exponential or cosine
        schedule over the epochs or the time budget, whichever ends first).
    optimizer : {"adam", "radam"}
    schedule : {"exponential", "cosine", "constant"}
    epochs : int or None
        Number of epochs; with ``max_time`` training stops at whichever comes first.
    max_time : float or None
        Wall-clock budget in seconds for the whole fit (validation included).
    grad_clip : float or None
        Gradient-norm clip; default None for forcing modes, 10 for the baseline.
    validation_fraction : float
        Fraction at the end of each segment held back to choose the best model (0 disables).
    eval_every : int
        Epochs between validations.
    patience : int or None
        Stop after this many validations without improvement.
    shooting : bool
        Learn the forcing states (multiple shooting; ``mode="sparse"`` only). Windows then
        start on a grid of ``tau`` bins, and the forcing state of every grid point is a free
        parameter, initialised at the data-inferred ẑ_t and fitted together with the model: it
        is pinned by the likelihood of its own bin, of the ``tau`` bins the model predicts from
        it, and by continuity with the prediction arriving at it from the previous grid point
        (weight ``continuity``). Use it when the forcing signal is noisy, as for spike counts:
        errors in data-inferred states bias the learned map towards contraction (regression
        dilution), which estimating the states jointly with the map avoids. The fitted states
        serve training only; inference on data uses the layer's inverse.
    continuity : float
        Weight of the continuity term of ``shooting``: the mean squared difference (over grid
        points and the M latent units) between the state predicted at a grid point and that
        grid point's forcing state. Large weights make the fitted states one trajectory of
        the model.
    seed : int
    device : {"cpu", "cuda", "auto"}
    progress : bool
        Show a tqdm progress bar.
    """

    mode: str = "sparse"
    tau: int = 20
    alpha: float | None = None
    seq_len: int | None = None
    batch_size: int = 256
    batches_per_epoch: int = 50
    lr: float = 3e-3
    lr_final: float = 1e-4
    optimizer: str = "adam"
    schedule: str = "exponential"
    epochs: int | None = 200
    max_time: float | None = None
    grad_clip: float | None = None
    validation_fraction: float = 0.1
    eval_every: int = 5
    n_val_steps: int = 10_000
    patience: int | None = None
    shooting: bool = False
    continuity: float = 1.0
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def validate(self) -> "TrainerConfig":
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}.")
        if isinstance(self.tau, bool) or not isinstance(self.tau, (int, np.integer)) or self.tau < 1:
            raise ValueError(f"tau must be an integer number of bins >= 1; got {self.tau!r}. Use "
                             "tau='auto' on the estimator to derive it from the data's λ_max.")
        if self.alpha is not None and not 0.0 < float(self.alpha) <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1] (or be None for the mode's default); "
                             f"got {self.alpha!r}.")
        for name in ("batch_size", "batches_per_epoch", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}.")
        if self.seq_len is not None and int(self.seq_len) < 1:
            raise ValueError(f"seq_len must be a positive integer; got {self.seq_len!r}.")
        if self.epochs is None and self.max_time is None:
            raise ValueError("give epochs, max_time, or both, so that training ends.")
        if self.epochs is not None and int(self.epochs) < 1:
            raise ValueError(f"epochs must be a positive integer; got {self.epochs!r}.")
        if self.max_time is not None and not float(self.max_time) > 0:
            raise ValueError(f"max_time must be a positive number of seconds; got {self.max_time!r}.")
        if self.optimizer not in ("adam", "radam"):
            raise ValueError(f"optimizer must be 'adam' or 'radam'; got {self.optimizer!r}.")
        if self.schedule not in ("exponential", "cosine", "constant"):
            raise ValueError(f"schedule must be 'exponential', 'cosine' or 'constant'; got {self.schedule!r}.")
        if self.shooting and self.mode != "sparse":
            raise ValueError(f"shooting (learned forcing states) needs mode='sparse'; got "
                             f"mode={self.mode!r}.")
        if not float(self.continuity) >= 0:
            raise ValueError(f"continuity must be a weight >= 0; got {self.continuity!r}.")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(f"validation_fraction must lie in [0, 1); got {self.validation_fraction!r}.")
        resolve_device(self.device)
        return self

    @property
    def window(self) -> int:
        if self.seq_len is not None:
            return int(self.seq_len)
        return {"sparse": int(self.tau), "gtf": 100, "bptt": 200}[self.mode]

    @property
    def strength(self) -> float:
        """The forcing strength α in use (``alpha``, or the mode's default)."""
        if self.alpha is not None:
            return float(self.alpha)
        return 0.1 if self.mode == "gtf" else 1.0

    @property
    def clip(self) -> float | None:
        if self.grad_clip is not None:
            return float(self.grad_clip)
        return 10.0 if self.mode == "bptt" else None

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda' or 'auto' (CUDA when available) as a torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available here; "
                             "use device='cpu' or 'auto'.")
        return torch.device(device)
    raise ValueError(f"device must be 'cpu', 'cuda' or 'auto'; got {device!r}.")


def _pad_state(zhat: torch.Tensor, state_dim: int) -> torch.Tensor:
    if zhat.shape[-1] == state_dim:
        return zhat
    pad = torch.zeros(*zhat.shape[:-1], state_dim - zhat.shape[-1], dtype=zhat.dtype, device=zhat.device)
    return torch.cat([zhat, pad], dim=-1)


@torch.no_grad()
def free_run(latent: LatentModel, z0: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Run the latent map freely for ``n_steps`` from states z0 (batch, state_dim).

    Returns
    -------
    torch.Tensor, shape (batch, n_steps, state_dim)
        z_1 … z_n (the initial state is not included).
    """
    stepper = latent.numpy_step() if z0.shape[0] == 1 else None
    if stepper is not None:
        z = z0[0].detach().cpu().numpy().astype(np.float64)
        out = np.empty((n_steps, z.shape[0]))
        for t in range(n_steps):
            z = stepper(z)
            out[t] = z
        return torch.as_tensor(out[None], dtype=z0.dtype, device=z0.device)
    z = z0
    out = torch.empty(z0.shape[0], n_steps, z0.shape[1], dtype=z0.dtype, device=z0.device)
    for t in range(n_steps):
        z = latent.step(z)
        out[:, t] = z
    return out


@dataclass
class _Data:
    X: torch.Tensor          # encoded targets, concatenated over segments (T, N)
    F: torch.Tensor          # forcing targets (T, N)
    starts: torch.Tensor     # valid window starts (global indices)


@dataclass
class TrainingHistory:
    """Record of a training run.

    ``val_collapse`` holds, per validation, the reason the free run collapsed
    (:func:`~nwb_dsr.analysis.collapse.detect_collapse`) or None; ``collapse`` is that reason
    for the selected checkpoint ("" when it did not collapse or nothing was validated).
    """

    loss: list = field(default_factory=list)
    val_epochs: list = field(default_factory=list)
    val_score: list = field(default_factory=list)
    val_dstsp: list = field(default_factory=list)
    val_dh: list = field(default_factory=list)
    val_collapse: list = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    best_epoch: int | None = None
    stopped: str = ""
    collapse: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    """Fit a latent model and an observation layer to observations.

    Parameters
    ----------
    latent : LatentModel
    observation : ObservationModel
        Already initialised from data (``fit_init``).
    config : TrainerConfig

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr.models import ShallowPLRNN, GaussianObservation
    >>> from nwb_dsr.observations import Observations
    >>> t = np.arange(3000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], 1)
    >>> obs = GaussianObservation(2, 2); obs.fit_init(x)
    >>> tr = Trainer(ShallowPLRNN(2, hidden_dim=8), obs,
    ...              TrainerConfig(tau=10, epochs=2, batches_per_epoch=5, progress=False))
    >>> hist = tr.fit(Observations(x, bin_size=0.05))
    >>> hist.epochs
    2
    """

    def __init__(self, latent: LatentModel, observation: ObservationModel, config: TrainerConfig):
        self.latent = latent
        self.observation = observation
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.history = TrainingHistory()
        #: Collapse reason of the last :meth:`validation_score` call (None: no collapse).
        self.last_collapse: str | None = None
        #: With ``shooting``: the learned forcing states (n_bins, M) over the concatenated
        #: training segments at the end of training (rows off the grid keep their initial ẑ).
        self.forcing_states: torch.Tensor | None = None

    # ------------------------------------------------------------------ data
    def _prepare(self, segments: list[np.ndarray], L: int, what: str) -> _Data:
        Xs, Fs, starts, off = [], [], [], 0
        for s in segments:
            T = s.shape[0]
            Xs.append(self.observation.encode(s))
            Fs.append(self.observation.forcing_target(s))
            if T > L:
                # multiple shooting: windows start on the grid of forcing states
                starts.append(off + np.arange(0, T - L, self.config.tau if self.config.shooting
                                              else 1))
            off += T
        if not starts:
            longest = max(s.shape[0] for s in segments)
            raise ValueError(f"the {what} data are shorter than one training window: the longest "
                             f"segment has {longest} bins but a window needs {L + 1}. Use a smaller "
                             "seq_len or tau, a smaller bin size, or longer segments.")
        dev = self.device
        return _Data(torch.as_tensor(np.concatenate(Xs), device=dev),
                     torch.as_tensor(np.concatenate(Fs), device=dev),
                     torch.as_tensor(np.concatenate(starts), device=dev))

    @staticmethod
    def split_validation(obs: Observations, fraction: float, min_len: int):
        """Hold back the last ``fraction`` of each long-enough segment for validation."""
        train, val = [], []
        for s in obs.data:
            cut = int(round(s.shape[0] * (1 - fraction)))
            if fraction > 0 and s.shape[0] - cut >= 2 and cut > min_len:
                train.append(s[:cut]); val.append(s[cut:])
            else:
                train.append(s)
        if fraction > 0 and not val and len(obs.data) > 1:
            n_val = max(1, int(round(len(obs.data) * fraction)))
            train, val = list(obs.data[:-n_val]), list(obs.data[-n_val:])
        return train, val

    # ------------------------------------------------------------------ core
    def rollout(self, F: torch.Tensor, states: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted states along a batch of windows of forcing targets F (batch, L+1, N).

        The state starts at ẑ_0 and is forced towards ẑ_t at the steps :meth:`forcing_steps`
        lists (every ``tau`` steps for ``mode="sparse"``, every step for ``mode="gtf"``), after
        the prediction for that step has been recorded: z ← z + α (ẑ_t − B⁺B z). The forcing
        acts on the part of the state the read-out sees; with M = N and B invertible that is
        the whole latent state, and α = 1 replaces it by ẑ_t. Directions the data do not
        determine (M > N) and state beyond the read-out (an LSTM's cell) keep the model's
        values, as with identity forcing of the observed units in the PLRNN literature.

        With ``states`` (batch, L+1, M), the learned forcing states of ``shooting``, ẑ_t is
        taken from them instead of inverting F, and the forcing sets the read-out's M latent
        units (z[:M] moves to ẑ_t; any state beyond them carries on).

        Returns
        -------
        torch.Tensor, shape (batch, L, state_dim)
            The predictions z_1 … z_L, each made before any reset at its step.
        """
        cfg, lat, obs = self.config, self.latent, self.observation
        L = F.shape[1] - 1
        M, S = obs.latent_dim, lat.state_dim
        forced = set(self.forcing_steps(L))
        a = cfg.strength
        # the part of the state a reset moves to ẑ_t; the rest of the state (directions of the
        # latent space B does not see, and any state beyond the read-out's M units) carries on
        if states is not None:  # learned states: the read-out's M units
            zhat = _pad_state(states, S)
            seen = lambda z: _pad_state(z[..., :M], S)  # noqa: E731
        else:
            P = obs.pinv()
            zhat = _pad_state(obs.invert(F, P), S)  # (B, L+1, S)
            if M > obs.n_obs or S > M:  # B⁺B ≠ I, or state beyond the read-out
                seen = lambda z: _pad_state((z[..., :M] @ obs.B.T) @ P.T, S)  # noqa: E731
            else:
                seen = lambda z: z  # noqa: E731
        z = zhat[:, 0]
        preds = []
        for t in range(1, L + 1):
            z = lat.step(z)
            preds.append(z)
            if t in forced:
                z = z + a * (zhat[:, t] - seen(z))
        return torch.stack(preds, dim=1)

    def window_loss(self, X: torch.Tensor, F: torch.Tensor,
                    states: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss of a batch of windows: encoded data X, forcing targets F (batch, L+1, N).

        With ``states`` (the learned forcing states of ``shooting``, (batch, L+1, M)) the loss
        also covers the bin at the window's start, read out from its state, and adds
        ``continuity`` times the mean squared difference between each prediction that
        arrives at a grid point and that grid point's state.
        """
        reg = self.latent.regularization()
        if states is None:
            return self.observation.loss(self.rollout(F), X[:, 1:]) + reg
        obs, tau = self.observation, self.config.tau
        pred = self.rollout(F, states)
        z0 = _pad_state(states[:, :1], pred.shape[-1])
        fit = obs.loss(torch.cat([z0, pred], dim=1), X)
        arrive = list(range(tau, X.shape[1], tau))  # steps that are grid points
        if not arrive or self.config.continuity == 0:
            return fit + reg
        gap = pred[:, [t - 1 for t in arrive], :obs.latent_dim] - states[:, arrive]
        return fit + self.config.continuity * gap.pow(2).mean() + reg

    def forcing_steps(self, L: int) -> list[int]:
        """0-based steps of a window of L+1 points at which the state is set to ẑ_t."""
        cfg = self.config
        if cfg.mode == "sparse":
            return [0] + [t for t in range(cfg.tau, L, cfg.tau)]
        if cfg.mode == "gtf":
            return list(range(L + 1))
        return [0]

    def _lr_factor(self, progress: float) -> float:
        cfg = self.config
        r = cfg.lr_final / cfg.lr
        p = min(max(progress, 0.0), 1.0)
        if cfg.schedule == "exponential":
            return r ** p
        if cfg.schedule == "cosine":
            return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))
        return 1.0

    def _snapshot(self):
        return (copy.deepcopy(self.latent.state_dict()), copy.deepcopy(self.observation.state_dict()))

    def _restore(self, snap):
        self.latent.load_state_dict(snap[0])
        self.observation.load_state_dict(snap[1])

    @torch.no_grad()
    def validation_score(self, val: _Data, pca: np.ndarray, n_steps: int) -> tuple[float, float, float]:
        """Score (D_stsp + 4·D_H) of a free run against the held-back data, in forcing space.

        The free run is turned into the forcing space as data would be
        (:meth:`~nwb_dsr.models.observation.ObservationModel.simulated_forcing_target`: for
        counts, Poisson draws smoothed and link-inverted), with the same seed at every
        validation so that scores of successive epochs differ by the model only. Both series
        are compared in the leading principal components ``pca`` of the held-back data.
        Whether the free run collapsed (:func:`~nwb_dsr.analysis.collapse.detect_collapse`,
        in the forcing space against the held-back data, on free runs of at least
        ``COLLAPSE_STEPS`` steps from ``COLLAPSE_STARTS`` points of it) is left in
        :attr:`last_collapse`.
        """
        obs, lat = self.observation, self.latent
        self.last_collapse = "non_finite"
        z0 = _pad_state(obs.invert(val.F[:1]), lat.state_dim)
        burn = n_steps // 4
        Z = free_run(lat, z0, n_steps + burn)[0, burn:]
        if not torch.isfinite(Z).all():
            return float("inf"), float("inf"), 1.0
        y = obs.simulated_forcing_target(Z, np.random.default_rng(self.config.seed))
        if not np.all(np.isfinite(y)):
            return float("inf"), float("inf"), 1.0
        ref = val.F.cpu().numpy().astype(np.float64)
        self.last_collapse = self._collapse(val, ref, burn, max(n_steps, COLLAPSE_STEPS))
        mu = ref.mean(0)
        yr, yg = (ref - mu) @ pca, (y - mu) @ pca
        ds = state_space_divergence(yr, yg)
        n = min(len(yr), len(yg))
        dh = power_spectrum_distance(yr[:n], yg[:n]) if n > 64 else 0.0
        ds = float("inf") if not np.isfinite(ds) else ds
        return ds + 4.0 * dh, ds, dh

    @torch.no_grad()
    def _collapse(self, val: _Data, ref: np.ndarray, burn: int, n_steps: int):
        """Collapse reason (or None) of free runs of ``n_steps`` (after ``burn``) from the
        forced states at ``COLLAPSE_STARTS`` evenly spaced points of the held-back data: the
        first reason found (a model can keep moving from one state and settle from another)."""
        obs, lat = self.observation, self.latent
        starts = sorted({int(v) for v in np.linspace(0, len(val.F) - 1, COLLAPSE_STARTS)})
        z0 = _pad_state(obs.invert(val.F[starts]), lat.state_dim)
        Z = free_run(lat, z0, n_steps + burn)[:, burn:]
        for b in range(Z.shape[0]):
            if not torch.isfinite(Z[b]).all():
                return "non_finite"
            y = obs.simulated_forcing_target(Z[b], np.random.default_rng(self.config.seed))
            reason = detect_collapse(y, ref)
            if reason:
                return reason
        return None

    def fit(self, obs: Observations, val_obs: Observations | None = None,
            callback=None) -> TrainingHistory:
        """Train on ``obs``; choose the best state on ``val_obs`` (or on held-back data).

        Parameters
        ----------
        obs : Observations
            Training data; windows never cross a segment boundary.
        val_obs : Observations, optional
            Data for model selection; default: the last ``validation_fraction`` of each
            segment (or the last segments when they are too short to split).
        callback : callable, optional
            ``callback(trainer, epoch, seconds)`` after every epoch, ``seconds`` being the
            training time so far. Time spent in the callback is not counted against
            ``max_time`` nor in the reported seconds (use it for external monitoring).

        Returns
        -------
        TrainingHistory
            Loss per epoch, validation scores, epochs, seconds, why training stopped.
        """
        cfg = self.config
        t_start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        L = cfg.window
        if val_obs is None:
            train_segs, val_segs = self.split_validation(obs, cfg.validation_fraction, L)
        else:
            train_segs, val_segs = list(obs.data), list(val_obs.data)
        data = self._prepare(train_segs, L, "training")
        val = None
        if val_segs:
            Fv = np.concatenate([self.observation.forcing_target(s) for s in val_segs])
            val = _Data(None, torch.as_tensor(Fv, device=self.device), None)
            _, _, vt = np.linalg.svd(Fv - Fv.mean(0), full_matrices=False)
            pca = vt[:min(3, vt.shape[0])].T.astype(np.float64)
            n_val_steps = int(min(max(len(Fv), 1000), cfg.n_val_steps))
        self.latent.to(self.device)
        self.observation.to(self.device)
        params = list(self.latent.parameters()) + list(self.observation.parameters())
        states = None
        if cfg.shooting:  # learned forcing states, initialised at the data-inferred ones
            with torch.no_grad():
                init = torch.cat([self.observation.invert(f) for f in data.F.split(65536)])
            states = torch.nn.Parameter(init)
            params.append(states)
        Opt = torch.optim.RAdam if cfg.optimizer == "radam" else torch.optim.Adam
        opt = Opt(params, lr=cfg.lr)
        ar = torch.arange(L + 1, device=self.device)
        hist = self.history
        last_good = self._snapshot()
        best, best_score = None, float("inf")
        n_starts = data.starts.numel()
        bar = None
        if cfg.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.epochs, desc="nwb_dsr fit", unit="epoch", leave=False)
        epoch, stale = 0, 0
        first_loss = None
        excluded = 0.0
        while True:
            elapsed = time.perf_counter() - t_start - excluded
            if cfg.epochs is not None and epoch >= cfg.epochs:
                hist.stopped = hist.stopped or "epochs"
                break
            if cfg.max_time is not None and elapsed >= cfg.max_time:
                hist.stopped = "max_time"
                break
            prog = epoch / cfg.epochs if cfg.epochs else 0.0
            if cfg.max_time:
                prog = max(prog, elapsed / cfg.max_time)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * self._lr_factor(prog)
            total, diverged, done = 0.0, False, 0
            for _ in range(cfg.batches_per_epoch):
                if cfg.max_time is not None and epoch > 0 and \
                        time.perf_counter() - t_start - excluded >= cfg.max_time:
                    break  # the budget ran out inside the epoch
                pick = torch.randint(0, n_starts, (cfg.batch_size,), generator=gen).to(self.device)
                W = data.starts[pick].unsqueeze(1) + ar
                loss = self.window_loss(data.X[W], data.F[W],
                                        None if states is None else states[W])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                lv = float(loss.detach())
                if first_loss is None:
                    first_loss = abs(lv) + 1.0
                if not math.isfinite(lv) or abs(lv) > 1e6 * first_loss:
                    diverged = True
                    break
                if cfg.clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip)
                opt.step()
                total += lv
                done += 1
            if not diverged and not all(torch.isfinite(p).all() for p in params):
                diverged = True
            if diverged:
                self._restore(last_good)
                hist.stopped = "diverged"
                warnings.warn(f"training stopped at epoch {epoch + 1}: the loss became NaN or "
                              "diverged. The parameters of the last good epoch were kept. Try a "
                              "smaller lr, a smaller tau, or gradient clipping (grad_clip).",
                              TrainingDivergedWarning, stacklevel=3)
                break
            if done == 0:
                hist.stopped = "max_time"
                break
            epoch += 1
            hist.loss.append(total / done)
            last_good = self._snapshot()
            if val is not None and (epoch % cfg.eval_every == 0):
                score, ds, dh = self.validation_score(val, pca, n_val_steps)
                hist.val_epochs.append(epoch); hist.val_score.append(score)
                hist.val_dstsp.append(ds); hist.val_dh.append(dh)
                hist.val_collapse.append(self.last_collapse)
                score += COLLAPSE_PENALTY if self.last_collapse else 0.0
                if score < best_score:
                    best_score, best, stale = score, last_good, 0
                    hist.best_epoch, hist.collapse = epoch, self.last_collapse or ""
                else:
                    stale += 1
                if cfg.patience is not None and stale >= cfg.patience:
                    hist.stopped = "early_stop"
                    break
            if callback is not None:
                c0 = time.perf_counter()
                callback(self, epoch, c0 - t_start - excluded)
                excluded += time.perf_counter() - c0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{hist.loss[-1]:.4g}",
                                val=f"{hist.val_score[-1]:.3g}" if hist.val_score else "-")
        if bar is not None:
            bar.close()
        if val is not None and epoch > 0 and (not hist.val_epochs or hist.val_epochs[-1] != epoch) \
                and hist.stopped != "diverged":
            score, ds, dh = self.validation_score(val, pca, n_val_steps)
            hist.val_epochs.append(epoch); hist.val_score.append(score)
            hist.val_dstsp.append(ds); hist.val_dh.append(dh)
            hist.val_collapse.append(self.last_collapse)
            score += COLLAPSE_PENALTY if self.last_collapse else 0.0
            if score < best_score:
                best_score, best, hist.best_epoch = score, self._snapshot(), epoch
                hist.collapse = self.last_collapse or ""
        if states is not None:
            self.forcing_states = states.detach()
        if best is not None:
            self._restore(best)
        hist.epochs = epoch
        hist.seconds = time.perf_counter() - t_start - excluded
        return hist
