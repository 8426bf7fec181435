"""Running a latent map and inferring its states from data: free runs, forced and smoothed states.

These are the two operations every part above the models needs: training forces the state
onto :func:`infer_states` of the data, and generation, validation, evaluation and the NWB
writer run the map freely with :func:`free_run`. :func:`smooth_states` infers the states of
data through time, under the fitted map as a prior (co-smoothing of held-out units).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .latent import LatentModel
from .observation import ObservationModel

__all__ = ["free_run", "pad_state", "infer_states", "mean_state", "smooth_states",
           "SMOOTHER_WEIGHTS"]

#: Weights of the transition prior that :func:`smooth_states` chooses from with
#: ``weight="auto"``, by cross-validation over the channels. The prior's variances are those of
#: the forced states' one-step residuals, which depend on how much the forcing targets are
#: smoothed, so no single weight suits every fit: on the ground-truth populations of the tests
#: 0.1 is chosen, on fits to a real M1 population 10 and 100.
SMOOTHER_WEIGHTS = (0.01, 0.1, 1.0, 10.0, 100.0)


def pad_state(z: torch.Tensor, state_dim: int) -> torch.Tensor:
    """Extend states of the read-out's M units, (..., M), to the full state, (..., state_dim).

    The entries beyond M (e.g. an LSTM's cell state) are zero.

    Examples
    --------
    >>> pad_state(torch.ones(2, 3), 5)[0]
    tensor([1., 1., 1., 0., 0.])
    """
    if z.shape[-1] == state_dim:
        return z
    pad = torch.zeros(*z.shape[:-1], state_dim - z.shape[-1], dtype=z.dtype, device=z.device)
    return torch.cat([z, pad], dim=-1)


@torch.no_grad()
def infer_states(latent: LatentModel, readout: ObservationModel, x) -> torch.Tensor:
    """Forced states of a segment of data: the read-out's inverse of every bin.

    Parameters
    ----------
    latent : LatentModel
    readout : ObservationModel
    x : array of shape (n_bins, n_channels)
        Data of one segment, in data units (counts or signal).

    Returns
    -------
    torch.Tensor, shape (n_bins, state_dim)
        ẑ_t for every bin (the read-out's M units; any further state entries are zero).
    """
    y = torch.as_tensor(readout.forcing_target(np.asarray(x)), device=readout.B.device)
    return pad_state(readout.invert(y), latent.state_dim)


@torch.no_grad()
@torch.no_grad()
def mean_state(latent: LatentModel, readout: ObservationModel) -> torch.Tensor:
    """The forced state of the read-out's offset b (the mean activity), shape (1, state_dim):
    where :meth:`nwb_dsr.DSR.generate` and the Lyapunov spectrum of a fit start by default."""
    return pad_state(readout.invert(readout.b.detach()[None]), latent.state_dim)


def free_run(latent: LatentModel, z0: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Run the latent map freely for ``n_steps`` from states z0 (batch, state_dim).

    On the CPU, trajectories run on the map's float64 NumPy step when it has one (lower
    per-step overhead than torch for these small maps); a batch of them steps together.

    Returns
    -------
    torch.Tensor, shape (batch, n_steps, state_dim)
        z_1 … z_n (the initial state is not included).
    """
    stepper = latent.numpy_step() if z0.device.type == "cpu" else None
    if stepper is not None:
        single = z0.shape[0] == 1
        z = z0.detach().numpy().astype(np.float64)
        z = z[0] if single else z
        out = np.empty((n_steps, *z.shape))
        with np.errstate(all="ignore"):
            for t in range(n_steps):
                z = stepper(z)
                out[t] = z
        out = out[None] if single else out.transpose(1, 0, 2)
        return torch.as_tensor(np.ascontiguousarray(out), dtype=z0.dtype, device=z0.device)
    z = z0
    out = torch.empty(z0.shape[0], n_steps, z0.shape[1], dtype=z0.dtype, device=z0.device)
    for t in range(n_steps):
        z = latent.step(z)
        out[:, t] = z
    return out


def _negloglik(readout: ObservationModel, rows, counts: bool):
    """The read-out's negative log-likelihood of data given states, up to constants: Poisson
    on raw counts, Gaussian (unit variance in the standardised space) otherwise."""
    B, b = readout.B.detach()[rows], readout.b.detach()[rows]
    M = readout.latent_dim

    def nll(Z, Y):
        lin = Z[:, :M] @ B.T + b
        if counts:
            rate = readout._link(lin)
            logr = lin if readout.link == "exp" else torch.log(rate.clamp_min(1e-12))
            return (rate - Y * logr).sum()
        return 0.5 * ((lin - Y) ** 2).sum()
    return nll


def _targets(readout: ObservationModel, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Forcing targets of data ``x`` that hold the read-out's channels ``rows`` (the read-out's
    forcing target works channel by channel, with each channel's own constants)."""
    if rows.size == readout.n_obs and np.array_equal(rows, np.arange(readout.n_obs)):
        return readout.forcing_target(x)
    full = np.zeros((x.shape[0], readout.n_obs))
    full[:, rows] = x
    return readout.forcing_target(full)[:, rows]


def _start(readout: ObservationModel, y: torch.Tensor, rows) -> torch.Tensor:
    """Forced states of forcing targets ``y`` of channels ``rows``; bins where the read-out's
    own inverse fails (a Newton step on a few silent units can diverge) get the
    least-squares inverse B⁺(y − b) instead."""
    ls = ObservationModel.invert(readout, y, rows=rows)
    try:
        z = readout.invert(y, rows=rows)
    except RuntimeError:  # torch.linalg.LinAlgError: a singular Newton system
        return ls
    bad = ~torch.isfinite(z).all(-1, keepdim=True)
    return torch.where(bad, ls, z)


class _Smoothing:
    """One smoothing problem: data ``segs`` of the read-out's channels ``rows``, their start
    states, transitions and data terms, set up once and solved for any weight."""

    def __init__(self, latent, readout, segs, rows, counts: bool):
        self.latent, self.counts = latent, counts
        dtype = readout.B.dtype
        self.targets = [torch.as_tensor(_targets(readout, s, rows)) for s in segs]
        with torch.no_grad():
            self.Z0 = torch.cat([pad_state(_start(readout, y, torch.as_tensor(rows)),
                                           latent.state_dim).to(dtype) for y in self.targets])
        self.off = np.concatenate([[0], np.cumsum([len(s) for s in segs])])
        self.src = torch.as_tensor(np.concatenate([np.arange(a, b - 1) for a, b in
                                                   zip(self.off[:-1], self.off[1:])])
                                   .astype(np.int64))
        self.dst = self.src + 1
        self.Y = (torch.as_tensor(np.concatenate(segs), dtype=dtype) if counts else
                  torch.cat(self.targets).to(dtype))
        self.nll = _negloglik(readout, torch.as_tensor(rows), counts)
        self.var = None
        if self.src.numel():
            with torch.no_grad():
                res = self.Z0[self.dst] - latent.step(self.Z0[self.src])
                self.var = (res.var(0) if len(res) > 1 else
                            torch.ones(self.Z0.shape[1], dtype=dtype)).clamp_min(1e-8)

    def solve(self, weight: float, max_iter: int) -> list:
        """MAP states for one weight, one tensor per segment."""
        latent, src, dst = self.latent, self.src, self.dst
        prior = self.var is not None and weight > 0
        inv_var = weight / self.var if prior else None
        Z = self.Z0.detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS([Z], lr=1.0, max_iter=int(max_iter), history_size=20,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = self.nll(Z, self.Y)
            if prior:
                loss = loss + 0.5 * (((Z[dst] - latent.step(Z[src])) ** 2) * inv_var).sum()
            loss.backward()
            return loss

        params = [q for q in latent.parameters() if q.requires_grad]
        try:  # the model's parameters stay as they are, gradients included
            for q in params:
                q.requires_grad_(False)
            with torch.enable_grad():
                opt.step(closure)
        finally:
            for q in params:
                q.requires_grad_(True)
        Z = Z.detach()
        return [Z[a:b] for a, b in zip(self.off[:-1], self.off[1:])]


def _channel_gains(readout: ObservationModel, rows, counts: bool, Z: torch.Tensor,
                   Y: np.ndarray) -> np.ndarray:
    """Log-likelihood (nats) by which states ``Z`` predict each channel of ``Y`` (channels
    ``rows`` of the read-out) better than the channel's own mean does: Poisson on counts,
    Gaussian with unit variance on forcing targets otherwise."""
    rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
    with torch.no_grad():
        lin = Z[:, :readout.latent_dim].double() @ readout.B.detach()[rows].double().T \
            + readout.b.detach()[rows].double()
        rate = readout._link(lin).numpy() if counts else None
    lin, Y = lin.numpy(), np.asarray(Y, dtype=np.float64)
    m = Y.mean(0, keepdims=True)
    if counts:
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = (Y * np.log(np.maximum(rate, 1e-300)) - rate).sum(0)
            ll0 = (Y * np.log(np.maximum(m, 1e-300)) - m).sum(0)
        return np.where(Y.sum(0) > 0, ll - ll0, 0.0)
    return 0.5 * (((Y - m) ** 2).sum(0) - ((lin - Y) ** 2).sum(0))


def _choose_weight(latent, readout, segs, rows, max_iter: int, counts: bool) -> float:
    """The weight of :data:`SMOOTHER_WEIGHTS` under which states smoothed from half of the
    channels best predict the other half (two folds, alternate channels): the most
    log-likelihood over the channels' own means (:func:`_channel_gains`), summed over the
    channels that some weight predicts better than their mean. A channel that no weight
    predicts (silent, drifting, or unrelated to the others under the fitted model) says
    nothing about the weight; counted, a few such units of a real M1 population chose a
    weight under which the held-out units were predicted no better than by their means."""
    folds = [np.arange(len(rows))[k::2] for k in (0, 1)]
    problems = []
    for k in (0, 1):  # smoothed from one fold, scored on the other
        fit, held = folds[1 - k], folds[k]
        Y = (np.concatenate(segs)[:, held] if counts else
             np.concatenate([_targets(readout, s, rows)[:, held] for s in segs]))
        problems.append((_Smoothing(latent, readout, [s[:, fit] for s in segs], rows[fit],
                                    counts), rows[held], Y))
    gains = np.array([np.concatenate([
        _channel_gains(readout, held, counts, torch.cat(problem.solve(w, max_iter)), Y)
        for problem, held, Y in problems]) for w in SMOOTHER_WEIGHTS])
    gains = np.where(np.isfinite(gains), gains, -np.inf)
    informative = gains.max(0) > 0
    total = gains[:, informative].sum(1) if informative.any() else gains.sum(1)
    return float(SMOOTHER_WEIGHTS[int(np.argmax(total))])


def smooth_states(latent: LatentModel, readout: ObservationModel, segments, *, rows=None,
                  weight="auto", max_iter: int = 300) -> list:
    """Most probable state trajectories of data under the fitted map (a MAP smoother).

    Forced states (:func:`infer_states`) read every bin on its own. Here the states z_1 … z_T
    of a segment maximise the read-out's log-likelihood of the data (Poisson on the raw
    counts, or Gaussian on the standardised signal) plus a Gaussian transition prior
    z_{t+1} ~ N(F(z_t), diag σ²) of the fitted map F, whose variances σ² are those of the
    forced states' one-step residuals ẑ_{t+1} − F(ẑ_t) on the same data, scaled by
    ``1 / weight``. The forced states are the starting point of L-BFGS. With ``rows``
    the data are those channels only, so held-out channels can be predicted from held-in ones
    (``readout.mean(z)`` of the result): this is co-smoothing with the model's dynamics.

    Parameters
    ----------
    latent, readout
        The fitted latent map and observation layer.
    segments : list of ndarray
        Data, one (n_bins_k, n_channels) array per segment (``len(rows)`` channels with
        ``rows``), in data units (counts or signal).
    rows : array of int, optional
        Channels of the read-out the data hold (default: all).
    weight : float or "auto", default "auto"
        Weight of the transition prior (0: each bin fitted on its own). ``"auto"`` takes the
        one of :data:`SMOOTHER_WEIGHTS` under which states smoothed from every other channel
        best predict the remaining channels (and the reverse), counting the channels that
        some weight predicts better than their own means; with fewer than four channels, 1.
    max_iter : int, default 300
        L-BFGS iterations of each solve (the cross-validation's included). A strong prior
        needs many: with 100, smoothing under weight 10 had not converged on a real M1
        population, so cross-validation took weight 1 and the held-out units were predicted
        no better than by their means.

    Returns
    -------
    list of torch.Tensor
        One (n_bins_k, state_dim) tensor of states per segment.

    Raises
    ------
    ValueError
        For a negative weight, a segment with the wrong number of channels, or no bins.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr.models import PoissonObservation, ShallowPLRNN
    >>> rng = np.random.default_rng(0)
    >>> counts = rng.poisson(0.5, size=(200, 6)).astype(float)
    >>> ro = PoissonObservation(6, 2); ro.fit_init(counts)
    >>> [z.shape for z in smooth_states(ShallowPLRNN(2, 8), ro, [counts], max_iter=5)]
    [torch.Size([200, 2])]
    """
    auto = isinstance(weight, str) and weight == "auto"
    if not auto:
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            weight = math.nan
        if not weight >= 0:
            raise ValueError(f"weight must be 'auto' or a number >= 0; got {weight!r}.")
    counts = readout.name == "poisson"
    rows = (np.arange(readout.n_obs) if rows is None
            else np.asarray(rows, dtype=np.int64).ravel())
    segs = [np.asarray(s, dtype=np.float64) for s in segments]
    for k, s in enumerate(segs):
        if s.ndim != 2 or s.shape[1] != rows.size or not len(s):
            raise ValueError(f"segment {k} must be (n_bins, {rows.size}) data, one column per "
                             f"channel of the read-out given; got shape {s.shape}.")
    if auto:
        weight = (_choose_weight(latent, readout, segs, rows, max_iter, counts)
                  if rows.size >= 4 else 1.0)
    return _Smoothing(latent, readout, segs, rows, counts).solve(weight, max_iter)
