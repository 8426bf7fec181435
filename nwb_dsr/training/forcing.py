"""Forcing schemes: how a training window is rolled out and what it costs.

Each scheme is one class behind the small protocol of :class:`ForcingScheme`, registered by
name in :data:`FORCING_SCHEMES` (``DSR(mode=name)`` finds it). The trainer is only the loop
around :meth:`ForcingScheme.loss`.

- :class:`SparseForcing` (``"sparse"``; Mikhaeil, Monfared & Durstewitz, NeurIPS 2022): the
  state is reset to the data-inferred ẑ_t every τ steps; the loss is taken on the predictions
  made before each reset.
- :class:`MultipleShooting` (``"shooting"``): sparse forcing whose forcing states are parameters
  of the fit, initialised at ẑ_t (for noisy forcing signals such as spike counts).
- :class:`GeneralizedTeacherForcing` (``"gtf"``; Hess et al., ICML 2023): the state is mixed
  towards ẑ_t at every step with strength α.
- :class:`NoForcing` (``"bptt"``): the baseline; only the first state of a window is forced
  and gradients are clipped.

Adding a scheme
---------------
Subclass :class:`ForcingScheme` (or one of the schemes) and register it; nothing else changes:

>>> from nwb_dsr.training.forcing import SparseForcing, register_forcing
>>> @register_forcing
... class EveryOtherForcing(SparseForcing):
...     '''Sparse forcing at every second grid point of tau.'''
...     name = "every_other"
...     def forcing_steps(self, L):
...         return [0] + list(range(2 * self.tau, L, 2 * self.tau))
>>> EveryOtherForcing(tau=3, alpha=1.0, window=12).forcing_steps(12)
[0, 6]
"""
from __future__ import annotations

from typing import ClassVar

import torch

from ..models.latent import LatentModel
from ..models.observation import ObservationModel
from ..models.rollout import pad_state

__all__ = ["ForcingScheme", "SparseForcing", "MultipleShooting", "GeneralizedTeacherForcing",
           "NoForcing", "FORCING_SCHEMES", "register_forcing", "make_forcing", "gather_rows"]

#: Registered forcing schemes, by name.
FORCING_SCHEMES: dict = {}


def register_forcing(cls):
    """Class decorator: make a :class:`ForcingScheme` available as ``DSR(mode=cls.name)``."""
    if not (isinstance(cls, type) and issubclass(cls, ForcingScheme)):
        raise TypeError("register_forcing takes a ForcingScheme subclass.")
    if not getattr(cls, "name", None):
        raise ValueError(f"{cls.__name__} needs a class attribute 'name'.")
    FORCING_SCHEMES[cls.name] = cls
    return cls


def make_forcing(name: str, **settings) -> "ForcingScheme":
    """Build a registered scheme by name with its settings (``tau``, ``alpha``, ``window``, ...).
    """
    try:
        cls = FORCING_SCHEMES[name]
    except KeyError:
        raise ValueError(f"mode must be one of {sorted(FORCING_SCHEMES)} or 'auto'; got "
                         f"{name!r}.") from None
    return cls(**settings)


def gather_rows(X: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``X[index]`` for an index array (batch, L+1) into the rows of X (n_bins, N), by one
    ``index_select`` (several times faster than advanced indexing on the CPU)."""
    return X.index_select(0, index.reshape(-1)).view(*index.shape, X.shape[1])


def rollout(latent: LatentModel, readout: ObservationModel, zhat: torch.Tensor, steps,
            alpha: float, project=None) -> torch.Tensor:
    """Predicted states along windows whose forcing states are ``zhat`` (batch, L+1, state_dim).

    The state starts at ẑ_0; at every step t of ``steps`` (after the prediction for t has been
    recorded) it is forced: z ← z + α (ẑ_t − project(z)), where ``project`` is the part of the
    state the forcing sets (default: all of it). Between forcing steps the map runs freely, one
    :meth:`~nwb_dsr.models.latent.LatentModel.unroll` call per stretch (fused for the shallow
    PLRNNs), so a window forced only at its start is a single call.

    Returns
    -------
    torch.Tensor, shape (batch, L, state_dim)
        The predictions z_1 … z_L, each made before any reset at its step.
    """
    L = zhat.shape[1] - 1
    forced = sorted({int(t) for t in steps if 0 < t < L})
    z = zhat[:, 0]
    preds, t = [], 0
    for stop in forced + [L]:
        stretch = latent.unroll(z, stop - t)
        preds.append(stretch)
        z = stretch[:, -1]
        if stop < L:
            z = z + alpha * (zhat[:, stop] - (z if project is None else project(z)))
        t = stop
    return preds[0] if len(preds) == 1 else torch.cat(preds, dim=1)


class ForcingScheme:
    """Base class of forcing schemes.

    Parameters
    ----------
    tau : int
        Forcing interval in steps (schemes that force at fixed intervals).
    alpha : float
        Forcing strength in (0, 1].
    window : int
        Steps per training window (windows hold ``window + 1`` bins).
    continuity : float
        Used by :class:`MultipleShooting` only.

    Notes
    -----
    The protocol a scheme implements:

    - class attributes ``name``, ``default_alpha``, ``default_clip`` and ``fixed_window``
      (the settings used when the user gives none);
    - :attr:`stride`: spacing of window starts in the training data;
    - :meth:`setup`: called once before training with the training data; returns extra
      parameters to fit with the model (none by default);
    - :meth:`rollout`: the predicted states of a batch of windows;
    - :meth:`loss`: the loss of a batch of windows (by default the read-out's loss of the
      rollout);
    - :meth:`forcing_steps`: the steps of a window at which the state is forced.
    """

    name: ClassVar[str] = ""
    default_alpha: ClassVar[float] = 1.0
    #: Gradient-norm clip when ``grad_clip`` is not given (None: no clipping).
    default_clip: ClassVar[float | None] = 1.0
    #: Window length when ``seq_len`` is not given; None: one forcing interval (τ).
    fixed_window: ClassVar[int | None] = None
    #: Whether :meth:`loss` reads the forcing targets F of a batch (the trainer passes None
    #: to a scheme that does not).
    uses_targets: ClassVar[bool] = True

    def __init__(self, tau: int = 1, alpha: float | None = None, window: int | None = None,
                 continuity: float = 1.0):
        self.tau = int(tau)
        self.alpha = float(self.default_alpha if alpha is None else alpha)
        self.window = int(self.default_window(self.tau) if window is None else window)
        self.continuity = float(continuity)

    @classmethod
    def default_window(cls, tau: int) -> int:
        """Window length when ``seq_len`` is not given."""
        return int(tau if cls.fixed_window is None else cls.fixed_window)

    @property
    def stride(self) -> int:
        """Spacing of window starts (1: every bin may start a window)."""
        return 1

    def forcing_steps(self, L: int) -> list:
        """0-based steps of a window of L+1 points at which the state is forced."""
        raise NotImplementedError

    def setup(self, latent: LatentModel, readout: ObservationModel,
              targets: torch.Tensor) -> list:
        """Prepare for training on the concatenated forcing targets (n_bins, N).

        Returns
        -------
        list of torch.nn.Parameter
            Extra parameters to fit together with the model.
        """
        return []

    def rollout(self, latent: LatentModel, readout: ObservationModel, F: torch.Tensor,
                index: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted states along a batch of windows of forcing targets F (batch, L+1, N).

        The forcing states are the read-out's inverse of F. A forcing step sets the part of
        the state the read-out sees: with M = N and B invertible the whole latent state; with
        M > N (B⁺B ≠ I) or state beyond the read-out (an LSTM's cell) the rest carries on, as
        identity forcing of the observed units does.

        Returns
        -------
        torch.Tensor, shape (batch, L, state_dim)
        """
        P = readout.pinv()
        S, M = latent.state_dim, readout.latent_dim
        zhat = pad_state(readout.invert(F, P), S)
        project = None
        if M > readout.n_obs or S > M:
            project = lambda z: pad_state((z[..., :M] @ readout.B.T) @ P.T, S)  # noqa: E731
        return rollout(latent, readout, zhat, self.forcing_steps(F.shape[1] - 1), self.alpha,
                       project)

    def loss(self, latent: LatentModel, readout: ObservationModel, X: torch.Tensor,
             F: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of windows: the read-out's loss of the :meth:`rollout` predictions.

        Parameters
        ----------
        X : torch.Tensor, shape (batch, L+1, N)
            Data as the read-out's loss takes them.
        F : torch.Tensor, shape (batch, L+1, N), or None
            Forcing targets (None for a scheme whose ``uses_targets`` is False).
        index : torch.Tensor, shape (batch, L+1)
            Positions of the windows' bins in the concatenated training data.
        """
        pred = self.rollout(latent, readout, F, index)
        return readout.loss(pred, X[:, 1:]) + latent.regularization()

    def describe(self) -> dict:
        """The scheme's settings (JSON-able)."""
        return {"name": self.name, "tau": self.tau, "alpha": self.alpha, "window": self.window}


@register_forcing
class SparseForcing(ForcingScheme):
    """Reset to ẑ_t at t = 0, τ, 2τ, … of every window (α < 1: partial resets)."""

    name = "sparse"

    def forcing_steps(self, L):
        return [0] + list(range(self.tau, L, self.tau))


@register_forcing
class GeneralizedTeacherForcing(ForcingScheme):
    """Mix z ← z + α(ẑ_t − z) at every step (Hess et al., ICML 2023); default α = 0.1."""

    name, default_alpha, fixed_window = "gtf", 0.1, 100

    def forcing_steps(self, L):
        return list(range(L + 1))


@register_forcing
class NoForcing(ForcingScheme):
    """Baseline: only the first state of a window is forced; BPTT over 200 steps, clip 10."""

    name, default_clip, fixed_window = "bptt", 10.0, 200

    def forcing_steps(self, L):
        return [0]


@register_forcing
class MultipleShooting(SparseForcing):
    """Sparse forcing with learned forcing states (multiple shooting).

    Windows start on a grid of τ bins. The forcing state of every grid point is a parameter,
    initialised at the data-inferred ẑ_t and fitted with the model: it is pinned by the
    likelihood of its own bin, of the τ bins predicted from it, and by ``continuity`` times the
    mean squared gap between the prediction arriving at the next grid point and that point's
    state. Errors in data-inferred states bias the fitted map towards contraction (regression
    dilution); estimating the states jointly with the map avoids it. The states serve training
    only: inference on data uses the read-out's inverse.

    Attributes
    ----------
    states : torch.nn.Parameter or None
        After :meth:`setup`: the forcing states (n_bins, M) of the concatenated training data
        (rows off the grid keep their initial ẑ).
    """

    name, uses_targets = "shooting", False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.states = None

    @property
    def stride(self):
        return self.tau

    def setup(self, latent, readout, targets):
        with torch.no_grad():
            init = torch.cat([readout.invert(f) for f in targets.split(65536)])
        self.states = torch.nn.Parameter(init)
        return [self.states]

    def rollout(self, latent, readout, F, index=None):
        """Predictions with the learned states of the windows' bins (``index``) as ẑ_t.

        The forcing sets the read-out's M latent units to the state; any state beyond them
        carries on.
        """
        return self._rollout(latent, readout, self.states[index])

    def _rollout(self, latent, readout, states):
        S, M = latent.state_dim, readout.latent_dim
        project = lambda z: pad_state(z[..., :M], S)  # noqa: E731
        return rollout(latent, readout, pad_state(states, S),
                       self.forcing_steps(states.shape[1] - 1), self.alpha, project)

    def loss(self, latent, readout, X, F, index):
        """The likelihood of every bin of the window, the first read out from its own state,
        plus ``continuity`` × the mean squared gap at the grid points the window reaches."""
        reg = latent.regularization()
        states = gather_rows(self.states, index)  # (batch, L+1, M)
        pred = self._rollout(latent, readout, states)
        z0 = pad_state(states[:, :1], pred.shape[-1])
        fit = readout.loss(torch.cat([z0, pred], dim=1), X)
        if X.shape[1] <= self.tau or self.continuity == 0:  # the window reaches no grid point
            return fit + reg
        # the predictions arriving at the grid points τ, 2τ, … and those points' states
        gap = pred[:, self.tau - 1::self.tau, :readout.latent_dim] - states[:, self.tau::self.tau]
        return fit + self.continuity * gap.pow(2).mean() + reg

    def describe(self):
        return {**super().describe(), "continuity": self.continuity}
