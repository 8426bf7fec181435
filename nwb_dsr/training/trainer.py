"""The training loop: minibatches of windows, a forcing scheme, the optimiser, model selection.

What happens inside a window (which states are forced, and how) is the forcing scheme's
(:mod:`nwb_dsr.training.forcing`); how a checkpoint is judged is the evaluation protocol's
(:mod:`nwb_dsr.protocol`). The loop samples windows across segments (never across a boundary),
steps Adam or RAdam along a learning-rate schedule over the epoch budget, validates every
``eval_every`` epochs and keeps the ``n_final_checks`` best checkpoints, and stops on the epoch
budget, the time budget, patience, or a diverging loss (keeping the last good state). With
``ema_decay`` > 0 the gradient steps move the raw parameters while an exponential moving
average of them is what validation, the final check, the callback and the fitted model see
(weight averaging; off by default). When training stops, the kept checkpoints are checked
again with longer free runs (``n_final_steps``) on the same held-back data, and from
``n_final_probes`` states spread over the training data and from the mean state (checked for
collapse only), and the best of that final check becomes the model. The time budget only
stops training early; nothing else depends on the wall clock, so a seed gives the same fit on
a busy and on an idle machine as long as the fit ends within its budget.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ..collapse import CollapseWarning, describe_collapse
from ..config import EvaluationConfig, OptimizationConfig, RunConfig
from ..models.latent import LatentModel
from ..models.observation import ObservationModel
from ..models.rollout import free_run, mean_state
from ..observations import Observations
from ..protocol import COLLAPSE_PENALTY, EvaluationProtocol
from .forcing import ForcingScheme, gather_rows

__all__ = ["Trainer", "TrainingHistory", "TrainingDivergedWarning", "CollapseWarning",
           "free_run", "resolve_device", "split_validation", "count_windows",
           "auto_batches_per_epoch", "make_optimizer", "AUTO_PATIENCE", "AUTO_BATCHES",
           "AUTO_FINAL_CHECKS", "AUTO_EVAL_EVERY", "RUNAWAYS", "DRIFT_FACTOR", "DRIFT_MARGIN",
           "is_drifting", "ema_decay_at"]

#: ``batches_per_epoch="auto"``: one pass over the training windows, within these bounds.
AUTO_BATCHES = (10, 50)

#: ``eval_every="auto"``: epochs between validations (spike counts: see
#: :data:`nwb_dsr.policies.COUNTS_EVAL_EVERY`).
AUTO_EVAL_EVERY = 5

#: ``patience="auto"``: validations without improvement of the best score before training
#: stops (50 epochs at the default ``eval_every``). Validations whose free run collapsed do not
#: count (see :class:`Trainer`).
AUTO_PATIENCE = 10

#: ``n_final_checks="auto"``: the best checkpoints by validation score that are checked again
#: with longer free runs when training ends. On lorenz63 (``benchmarks/reconstruct.py``, seed
#: 2) validation's best checkpoint gave D_stsp 0.90 in the 100,000-step test run, the final
#: check's choice 0.10.
AUTO_FINAL_CHECKS = 8

#: Without a final check (``n_final_checks`` 1, the default for spike counts) the selected
#: checkpoint still runs from the final check's probe states (``n_final_probes``), and the
#: runs that end in one of these collapses are counted and warned about, not penalised: there
#: is no other checkpoint of the member to choose, and the other member may be far worse. Runs
#: that come to rest are not counted: fits to counts can keep a stable fixed point with a small
#: basin beside a good attractor. On ``benchmarks/spikes_vs_gpfa.py`` (``ensemble.members``
#: lists the counts) no member of the Lorenz seeds 0–9 ran away; on Rössler seed 0 the selected
#: member ran away from 12 of the 33 runs (its free run from the first test bin becomes
#: non-finite); on Sprott B seed 1 the better member (λ_max 0.64 against 0.84, validation score
#: 2.6) from 1, and penalising that would have chosen the other (0.10, score 11.7).
RUNAWAYS = ("non_finite", "exploding")


#: A checkpoint whose score in the final check's longer free runs exceeds its validation score
#: by this factor and by :data:`DRIFT_MARGIN` is marked ``"drifting"`` (a collapse): its runs
#: leave, after the validation's length, the attractor that validation saw (transient chaos
#: before a fixed point, say). On lorenz63 (``benchmarks/reconstruct.py``, seed 0, final runs
#: of 50,000 steps) the three uncollapsed checkpoints of the final check scored 2.8, 4.2 and
#: 8.2 against 0.8, 1.7 and 3.0 in validation, and the free run of the one chosen came to rest
#: (D_stsp 16 in the 100,000-step test run); on seed 1 the eight scored 0.9–1.2 times their
#: validation scores.
DRIFT_FACTOR = 2.0
#: See :data:`DRIFT_FACTOR` (in units of the selection score D_stsp + dh_weight·D_H).
DRIFT_MARGIN = 0.5


def is_drifting(validation_score: float, final_score: float) -> bool:
    """Whether a checkpoint's final-check score shows its free runs drifting off the attractor
    validation saw: above :data:`DRIFT_FACTOR` times its validation score and by more than
    :data:`DRIFT_MARGIN`.

    Examples
    --------
    >>> is_drifting(0.8, 2.8), is_drifting(0.32, 0.46), is_drifting(0.1, 0.25)
    (True, False, False)
    """
    return bool(math.isfinite(final_score) and math.isfinite(validation_score)
                and final_score > DRIFT_FACTOR * validation_score
                and final_score - validation_score > DRIFT_MARGIN)


def count_windows(lengths, window: int, stride: int) -> int:
    """Number of training windows of ``window`` steps (``window + 1`` bins) that start every
    ``stride`` bins in segments of the given lengths (windows never cross a segment boundary).

    Examples
    --------
    >>> count_windows([30, 41], 5, 5), count_windows([3], 5, 1)
    (13, 0)
    """
    return int(sum(len(range(0, int(T) - window, stride)) for T in lengths if T > window))


def auto_batches_per_epoch(n_windows: int, batch_size: int) -> int:
    """``batches_per_epoch="auto"``: one pass over ``n_windows`` in batches of ``batch_size``,
    clipped to :data:`AUTO_BATCHES`.

    Examples
    --------
    >>> auto_batches_per_epoch(2500, 256), auto_batches_per_epoch(90_000, 256)
    (10, 50)
    """
    lo, hi = AUTO_BATCHES
    return int(min(max(math.ceil(n_windows / batch_size), lo), hi))


def make_optimizer(name: str, params: list, lr: float) -> torch.optim.Optimizer:
    """Adam (``"adam"``) or RAdam (``"radam"``) over ``params``.

    Adam uses torch's fused kernel where the parameters' device supports it (one kernel for all
    parameters; the same update up to float rounding), RAdam the multi-tensor implementation.
    """
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr, foreach=True)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:  # a device or dtype without the fused kernel
        return torch.optim.Adam(params, lr=lr)


class TrainingDivergedWarning(RuntimeWarning):
    """Training stopped because the loss became NaN or diverged; the last good state was kept."""


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


def split_validation(segments: list, fraction: float, min_len: int):
    """Hold back the last ``fraction`` of each segment longer than ``min_len`` for validation.

    When no segment can be split (e.g. many short trials), the last ``fraction`` of the
    segments is held back whole.

    Returns
    -------
    (list of ndarray, list of ndarray)
        Training and validation segments.
    """
    train, val = [], []
    for s in segments:
        cut = int(round(s.shape[0] * (1 - fraction)))
        if fraction > 0 and s.shape[0] - cut >= 2 and cut > min_len:
            train.append(s[:cut]); val.append(s[cut:])
        else:
            train.append(s)
    if fraction > 0 and not val and len(segments) > 1:
        n_val = max(1, int(round(len(segments) * fraction)))
        train, val = list(segments[:-n_val]), list(segments[-n_val:])
    return train, val


@dataclass
class TrainingHistory:
    """Record of a training run.

    ``val_epochs``, ``val_score``, ``val_dstsp``, ``val_dh`` and ``val_collapse`` hold every
    validation. With ``n_final_checks`` > 1 the checkpoints with the best validation scores are
    checked again with longer free runs when training ends: ``final_epochs`` (best validation
    first), ``final_score``, ``final_dstsp``, ``final_dh`` and ``final_collapse`` hold that
    check (empty without one), ``final_probes_collapsed`` how many of its collapse-only runs
    from states of the training data and the mean state (``n_final_probes``) collapsed,
    ``final_rank`` what that check ranked them by (the final score, or with
    ``selection="spectrum"`` the spectral rank, :class:`~nwb_dsr.protocol.EvaluationProtocol`
    step 7) and ``final_rhythm_error`` the relative distance of their typical run's dominant
    rhythm from the data's (the median over the runs; None without that selection or rhythm).
    ``best_epoch`` is the epoch of the selected checkpoint and ``best_score`` its rank in the
    last check it went through: the final check's when there was one (lowest there wins), else
    its validation score (lowest wins); ``collapse`` is its collapse reason in that same check.
    Without a final check (``n_final_checks`` 1, the default for spike counts) the selected
    checkpoint still runs from those states, and ``probes_runaway`` counts the runs that ran
    away (non-finite or exploding; see :data:`RUNAWAYS`), None when none were run; the fit
    warns when there are any, and neither the score nor ``collapse`` changes.
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
    best_score: float | None = None
    stopped: str = ""
    collapse: str | None = None
    final_epochs: list = field(default_factory=list)
    final_score: list = field(default_factory=list)
    final_dstsp: list = field(default_factory=list)
    final_dh: list = field(default_factory=list)
    final_collapse: list = field(default_factory=list)
    final_probes_collapsed: list = field(default_factory=list)
    final_rank: list = field(default_factory=list)
    final_rhythm_error: list = field(default_factory=list)
    probes_runaway: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingHistory":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class _Windows:
    X: torch.Tensor          # data as the loss takes them, concatenated over segments (T, N)
    F: torch.Tensor          # forcing targets (T, N)
    starts: torch.Tensor     # valid window starts (global indices)


def ema_decay_at(decay: float, n_updates: int) -> float:
    """Decay of the parameter average at its ``n_updates``-th update: ``decay``, but at most
    (1 + n)/(10 + n), so that the first steps, far from the initial state, soon outweigh it
    (the initial state weighs 0.1 after one step and under 1 % after three).

    Examples
    --------
    >>> ema_decay_at(0.995, 0), round(ema_decay_at(0.995, 90), 3), ema_decay_at(0.995, 5000)
    (0.1, 0.91, 0.995)
    """
    return min(float(decay), (1.0 + n_updates) / (10.0 + n_updates))


class _Average:
    """The exponential moving average of ``params`` (decay per :meth:`update`, see
    :func:`ema_decay_at`), and the swap of it into the parameters; with ``decay`` 0 the
    parameters themselves (every method a no-op).
    """

    def __init__(self, params: list, decay: float):
        self.params, self.decay, self.n_updates = params, float(decay), 0
        self._raw = [p.detach() for p in params]          # views, shared with the parameters
        self.average = [p.clone() for p in self._raw] if self.decay > 0 else None

    @torch.no_grad()
    def update(self):
        if self.average is not None:
            d = ema_decay_at(self.decay, self.n_updates)
            torch._foreach_lerp_(self.average, self._raw, 1.0 - d)
            self.n_updates += 1

    @torch.no_grad()
    def _exchange(self):
        for p, a in zip(self.params, self.average):
            raw = p.detach().clone()
            p.copy_(a)
            a.copy_(raw)

    @contextlib.contextmanager
    def swapped(self):
        """The average in the parameters inside the block, the raw parameters after it."""
        if self.average is None:
            yield
            return
        self._exchange()
        try:
            yield
        finally:
            self._exchange()

    @torch.no_grad()
    def load(self):
        """Put the average into the parameters for good."""
        if self.average is not None:
            for p, a in zip(self.params, self.average):
                p.copy_(a)


class Trainer:
    """Fit a latent model and an observation layer to observations with a forcing scheme.

    Parameters
    ----------
    latent : LatentModel
    readout : ObservationModel
        Already initialised from data (``fit_init``).
    scheme : ForcingScheme
        How windows are forced (:mod:`nwb_dsr.training.forcing`).
    optimization : OptimizationConfig
    evaluation : EvaluationConfig
    run : RunConfig

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr.config import OptimizationConfig, RunConfig
    >>> from nwb_dsr.models import ShallowPLRNN, GaussianObservation
    >>> from nwb_dsr.training import SparseForcing
    >>> t = np.arange(3000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], 1)
    >>> readout = GaussianObservation(2, 2); readout.fit_init(x)
    >>> tr = Trainer(ShallowPLRNN(2, hidden_dim=8), readout, SparseForcing(tau=10),
    ...              OptimizationConfig(epochs=2, batches_per_epoch=5),
    ...              run=RunConfig(progress=False))
    >>> tr.fit(Observations(x, bin_size=0.05)).epochs
    2
    """

    def __init__(self, latent: LatentModel, readout: ObservationModel, scheme: ForcingScheme,
                 optimization: OptimizationConfig = OptimizationConfig(),
                 evaluation: EvaluationConfig = EvaluationConfig(),
                 run: RunConfig = RunConfig()):
        self.latent = latent
        self.readout = readout
        self.scheme = scheme
        for section in (optimization, evaluation, run):
            section.check()
        self.optimization, self.evaluation, self.run = optimization, evaluation, run
        self.device = resolve_device(run.device)
        self.history = TrainingHistory()
        self.protocol = EvaluationProtocol.from_config(evaluation, seed=run.seed)
        self.final_protocol = EvaluationProtocol.from_config(evaluation, seed=run.seed,
                                                             final=True)

    @property
    def n_final_checks(self) -> int:
        """Checkpoints kept for the final check (the setting, or :data:`AUTO_FINAL_CHECKS`)."""
        k = self.evaluation.n_final_checks
        return AUTO_FINAL_CHECKS if k == "auto" else int(k)

    @property
    def grad_clip(self) -> float | None:
        """The gradient-norm clip in use (the setting, or the scheme's default)."""
        clip = self.optimization.grad_clip
        return self.scheme.default_clip if clip is None else float(clip)

    # ------------------------------------------------------------------ data
    def _windows(self, segments: list, what: str) -> _Windows:
        L, stride = self.scheme.window, self.scheme.stride
        Xs, Fs, starts, off = [], [], [], 0
        for s in segments:
            T = s.shape[0]
            Xs.append(self.readout.encode(s))
            Fs.append(self.readout.forcing_target(s))
            if T > L:
                starts.append(off + np.arange(0, T - L, stride))
            off += T
        if not starts:
            longest = max(s.shape[0] for s in segments)
            raise ValueError(f"the {what} data are shorter than one training window: the longest "
                             f"segment has {longest} bins but a window needs {L + 1}. Use a smaller "
                             "seq_len or tau, a smaller bin size, or longer segments.")
        dev = self.device
        return _Windows(torch.as_tensor(np.concatenate(Xs), device=dev),
                        torch.as_tensor(np.concatenate(Fs), device=dev),
                        torch.as_tensor(np.concatenate(starts), device=dev))

    def _lr_factor(self, progress: float) -> float:
        opt = self.optimization
        r = opt.lr_final / opt.lr
        p = min(max(progress, 0.0), 1.0)
        if opt.schedule == "exponential":
            return r ** p
        if opt.schedule == "cosine":
            return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))
        return 1.0

    def _snapshot(self):
        return (copy.deepcopy(self.latent.state_dict()), copy.deepcopy(self.readout.state_dict()))

    def _restore(self, snap):
        self.latent.load_state_dict(snap[0])
        self.readout.load_state_dict(snap[1])

    def validate(self, segments: list):
        """The evaluation protocol's result for the current parameters on ``segments``."""
        return self.protocol.evaluate(self.latent, self.readout, segments)

    def final_check(self, segments: list, probe_segments: list | None = None):
        """The final check's result (``n_final_steps`` steps a run) for the current parameters
        on ``segments``; with ``n_final_probes`` > 0, collapse-only runs from the forced states
        of that many bins spread over ``probe_segments`` (the training data) when given, and
        from the mean state (the forced state of the read-out offset). With
        ``selection="spectrum"`` its rank and rhythm error are those of
        :meth:`~nwb_dsr.protocol.EvaluationProtocol.spectral_check` against
        ``probe_segments`` when given, with the collapse of the runs on ``segments`` and of
        the probes (those runs are judged by their typical spectrum: one of them that comes to
        rest only moves D_H and the median rhythm error; one that becomes non-finite is a
        collapse and ranks last)."""
        fp = self.final_protocol
        probes = self._probe_states(probe_segments) if fp.n_probes > 0 else None
        spectral = fp.selection == "spectrum" and bool(probe_segments)
        # with the training data at hand their check gives the rank; the runs on the held-back
        # data then give the score and the collapse only
        res = (replace(fp, selection="score") if spectral else fp).evaluate(
            self.latent, self.readout, segments, probes=probes)
        if spectral and math.isfinite(res.score):   # (non-finite runs there rank last)
            # the spectrum is judged against the training data, whose spectrum the few
            # seconds held back resolve too coarsely (EvaluationProtocol step 7)
            tr = fp.spectral_check(self.latent, self.readout, probe_segments)
            collapse = res.collapse or ("non_finite" if tr.collapse == "non_finite" else None)
            res = replace(res, collapse=collapse, rhythm_error=tr.rhythm_error,
                          score=res.score + (COLLAPSE_PENALTY if collapse and not res.collapse
                                             else 0.0),
                          spectral_rank=fp.spectrum_rank(tr.dstsp, tr.dh, tr.rhythm_error,
                                                         collapse is not None))
        return res

    def _probe_states(self, probe_segments: list | None) -> torch.Tensor:
        """The mean state, then the forced states of ``n_final_probes`` bins spread over
        ``probe_segments`` when given."""
        probes = mean_state(self.latent, self.readout)
        if probe_segments:
            probes = torch.cat([probes, self.final_protocol.probe_states(
                self.latent, self.readout, probe_segments)])
        return probes

    @torch.no_grad()
    def probe(self, segments: list, probe_segments: list | None = None) -> list:
        """Collapse reason (or None) of each of the final check's collapse-only runs for the
        current parameters: from the mean state and, when ``probe_segments`` (the training
        data) are given, from the forced states of ``n_final_probes`` bins spread over them,
        ``n_val_steps`` steps each, judged against ``segments`` as in the final check."""
        _, ref_c, to_space = self.final_protocol.reference(self.readout, segments)
        return self.final_protocol.probe(self.latent, self.readout,
                                         self._probe_states(probe_segments), ref_c, to_space)

    # ------------------------------------------------------------------ loop
    def fit(self, obs: Observations, val_obs: Observations | None = None,
            callback=None) -> TrainingHistory:
        """Train on ``obs``; choose the best checkpoint on ``val_obs`` (or on held-back data).

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
            ``max_time`` nor in the reported seconds (use it for external monitoring). The
            latest validation is ``trainer.history.val_score[-1]`` (lower is better).

        Returns
        -------
        TrainingHistory
            Loss per epoch, validation scores, epochs, seconds, why training stopped.
        """
        opt_cfg, seed = self.optimization, self.run.seed
        t_start = time.perf_counter()
        torch.manual_seed(seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        L = self.scheme.window
        if val_obs is None:
            train_segs, val_segs = split_validation(list(obs.data), opt_cfg.validation_fraction, L)
        else:
            train_segs, val_segs = list(obs.data), list(val_obs.data)
        data = self._windows(train_segs, "training")
        # rules left as "auto" (a Trainer built without nwb_dsr.policies.resolve)
        n_batches = opt_cfg.batches_per_epoch
        if n_batches == "auto":
            n_batches = auto_batches_per_epoch(data.starts.numel(), opt_cfg.batch_size)
        patience = AUTO_PATIENCE if opt_cfg.patience == "auto" else opt_cfg.patience
        eval_every = AUTO_EVAL_EVERY if opt_cfg.eval_every == "auto" else opt_cfg.eval_every
        self.latent.to(self.device)
        self.readout.to(self.device)
        params = list(self.latent.parameters()) + list(self.readout.parameters())
        params += self.scheme.setup(self.latent, self.readout, data.F)
        opt = make_optimizer(opt_cfg.optimizer, params, opt_cfg.lr)
        averaging = _Average(list(self.latent.parameters()) + list(self.readout.parameters()),
                             opt_cfg.ema_decay)
        clip = self.grad_clip
        uses_targets = self.scheme.uses_targets
        ar = torch.arange(L + 1, device=self.device)
        hist = self.history
        last_good = self._snapshot()
        # the n_final_checks best checkpoints as (validation score, epoch, snapshot), best first
        kept, n_kept, best_score = [], self.n_final_checks, math.inf
        n_starts = data.starts.numel()
        bar = None
        if self.run.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=opt_cfg.epochs, desc="nwb_dsr fit", unit="epoch", leave=False)
        epoch, stale, first_loss, excluded = 0, 0, None, 0.0

        def elapsed():
            return time.perf_counter() - t_start - excluded

        def validate_now():
            nonlocal best_score, stale
            with averaging.swapped():
                res = self.validate(val_segs)
                snapshot = self._snapshot() if res.score < math.inf and (
                    len(kept) < n_kept or res.score < kept[-1][0]) else None
            hist.val_epochs.append(epoch); hist.val_score.append(res.score)
            hist.val_dstsp.append(res.dstsp); hist.val_dh.append(res.dh)
            hist.val_collapse.append(res.collapse)
            if snapshot is not None:
                kept.append((res.score, epoch, snapshot))
                kept.sort(key=lambda c: c[0])  # stable: of equal scores the earlier first
                del kept[n_kept:]
            if res.score < best_score:
                best_score, stale = res.score, 0
                hist.best_epoch = epoch
            elif res.collapse is None:
                # patience counts runs that say something about the dynamics: a collapsed
                # (exploded or resting) checkpoint is a detour that training may leave again
                stale += 1

        while True:
            if opt_cfg.epochs is not None and epoch >= opt_cfg.epochs:
                hist.stopped = hist.stopped or "epochs"
                break
            if opt_cfg.max_time is not None and elapsed() >= opt_cfg.max_time:
                hist.stopped = "max_time"
                break
            # the schedule follows the epoch budget (the wall clock only without one)
            prog = epoch / opt_cfg.epochs if opt_cfg.epochs else elapsed() / opt_cfg.max_time
            for g in opt.param_groups:
                g["lr"] = opt_cfg.lr * self._lr_factor(prog)
            total, diverged, done = 0.0, False, 0
            for _ in range(n_batches):
                if opt_cfg.max_time is not None and epoch > 0 and elapsed() >= opt_cfg.max_time:
                    break  # the budget ran out inside the epoch
                pick = torch.randint(0, n_starts, (opt_cfg.batch_size,), generator=gen)
                W = data.starts[pick.to(self.device)].unsqueeze(1) + ar
                loss = self.scheme.loss(self.latent, self.readout, gather_rows(data.X, W),
                                        gather_rows(data.F, W) if uses_targets else None, W)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                lv = float(loss.detach())
                if first_loss is None:
                    first_loss = abs(lv) + 1.0
                if not math.isfinite(lv) or abs(lv) > 1e6 * first_loss:
                    diverged = True
                    break
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
                opt.step()
                averaging.update()
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
            if val_segs and epoch % eval_every == 0:
                validate_now()
                if patience is not None and stale >= patience:
                    hist.stopped = "early_stop"
            if callback is not None:
                c0 = time.perf_counter()
                with averaging.swapped():
                    callback(self, epoch, c0 - t_start - excluded)
                excluded += time.perf_counter() - c0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{hist.loss[-1]:.4g}",
                                val=f"{hist.val_score[-1]:.3g}" if hist.val_score else "-")
            if hist.stopped == "early_stop":
                break
        if bar is not None:
            bar.close()
        if val_segs and epoch > 0 and (not hist.val_epochs or hist.val_epochs[-1] != epoch) \
                and hist.stopped != "diverged":
            validate_now()
        probed = []  # collapse reasons of the probe runs made without a final check
        if kept:
            probed = self._select(kept, val_segs, train_segs)
        elif hist.stopped != "diverged":
            averaging.load()  # no checkpoint to choose from: the average of the last steps
        self.validation_segments = val_segs
        where = "at every validation of this fit"
        if hist.final_epochs:
            hist.collapse = hist.final_collapse[hist.final_epochs.index(hist.best_epoch)]
            if not all(c is not None for c in hist.val_collapse):
                where = (f"in the final check of the {len(hist.final_epochs)} best checkpoints "
                         "of this fit")
        elif hist.best_epoch is not None and hist.val_epochs:
            hist.collapse = hist.val_collapse[hist.val_epochs.index(hist.best_epoch)]
        elif hist.val_collapse and all(c is not None for c in hist.val_collapse):
            hist.collapse = hist.val_collapse[-1]
        if hist.collapse is not None:
            warnings.warn(f"{describe_collapse(hist.collapse)} {where}, "
                          "so the model does not reproduce the data's dynamics although its "
                          "one-step predictions may look good. Try another seed, tau='auto', a "
                          "longer budget, or check the preprocessing of the data.",
                          CollapseWarning, stacklevel=3)
        elif hist.probes_runaway:
            first = next(r for r in probed if r in RUNAWAYS)
            warnings.warn(f"{describe_collapse(first)} when started from "
                          f"{hist.probes_runaway} of {len(probed)} states of the training "
                          "data (and the mean state), although its runs on the "
                          "held-back data did not: free runs (generate) from such states are "
                          "not a model of the data. Compare a fit from another seed.",
                          CollapseWarning, stacklevel=3)
        hist.epochs = epoch
        hist.seconds = time.perf_counter() - t_start - excluded
        return hist

    def _select(self, kept: list, segments: list, probe_segments: list | None = None):
        """Restore the model from the kept checkpoints, (validation score, epoch, snapshot) best
        first: the first one, or with ``n_final_checks`` > 1 the one with the lowest rank in
        the final check on ``segments`` (its score, or with ``selection="spectrum"`` its
        spectral rank; of equal ranks the better validation; a checkpoint
        whose final score shows it drifting, :func:`is_drifting`, or whose runs from states of
        ``probe_segments`` collapse, counts as collapsed), and record the choice in the
        history. Without a final check the chosen checkpoint runs from the probe states: the
        collapse reasons (or None) of those runs are returned (an empty list otherwise)."""
        hist = self.history
        score, epoch, snap = kept[0]
        probed = []
        if self.n_final_checks == 1 and self.final_protocol.n_probes > 0 and segments:
            self._restore(snap)
            probed = self.probe(segments, probe_segments)
            hist.probes_runaway = sum(r in RUNAWAYS for r in probed)
        elif self.n_final_checks > 1:
            for val_score, ep, sn in kept:
                self._restore(sn)
                res = self.final_check(segments, probe_segments)
                score, rank, collapse = res.score, res.rank, res.collapse
                if collapse is None and is_drifting(val_score, score):
                    collapse = "drifting"
                    score, rank = score + COLLAPSE_PENALTY, rank + COLLAPSE_PENALTY
                hist.final_epochs.append(ep); hist.final_score.append(score)
                hist.final_dstsp.append(res.dstsp); hist.final_dh.append(res.dh)
                hist.final_collapse.append(collapse)
                hist.final_probes_collapsed.append(res.n_probes_collapsed)
                hist.final_rank.append(rank); hist.final_rhythm_error.append(res.rhythm_error)
            i = int(np.argmin(hist.final_rank))
            score, epoch, snap = hist.final_rank[i], kept[i][1], kept[i][2]
        self._restore(snap)
        hist.best_epoch, hist.best_score = epoch, float(score)
        return probed
