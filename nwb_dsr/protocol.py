"""The evaluation protocol: how a free run is compared with data, defined once.

Model selection during training, :meth:`nwb_dsr.DSR.score`, :func:`nwb_dsr.evaluate` and the
scripts in ``benchmarks/`` all call :class:`EvaluationProtocol`, so the model is selected on the
number that is reported.

The protocol (../METRICS.md):

1. **Start.** The state is forced at the first bin of the reference data (the observation
   layer's inverse of it; for counts the smoothing sees the bins around it).
2. **Free run.** The map runs ``n + transient·n`` steps without forcing and the first
   ``transient·n`` are dropped; n is the number of reference bins unless given, at least
   ``min_steps`` and at most ``max_steps``.
3. **Space.** Both series are compared in the observation layer's forcing space, the space in
   which forcing acts: standardised signal for continuous data (the Gaussian read-out B z + b
   against the standardised data); for spike counts link⁻¹ of kernel-smoothed counts, the
   generated rates being drawn as Poisson counts (fixed seed) and smoothed like the data so that
   both carry the same noise. Counts are then projected onto the leading
   ``COUNTS_COMPONENTS`` principal components of the reference. Finally both series are
   standardised with the reference's mean and standard deviation.
4. **Metrics.** D_stsp (binning below 6 dimensions, the Gaussian-mixture estimate from 6) and
   D_H over the first min(n_ref, n) steps (not computed below 64 steps); the selection score is
   D_stsp + ``dh_weight``·D_H (lower is better).
5. **Collapse.** Besides the scored run, the model runs freely from ``collapse_starts`` evenly
   spaced bins of the reference for at least ``collapse_steps`` steps (a model can keep moving
   from one state and settle from another, or diverge slowly). A run that is not finite,
   explodes, or whose noise-free read-out comes to rest while the reference moves is flagged
   (:func:`nwb_dsr.collapse.detect_collapse`, in the comparison space). A scored run that is
   not finite scores +inf; otherwise a collapse adds ``COLLAPSE_PENALTY`` to the score, so a
   collapsed checkpoint is selected only when every checkpoint collapsed. Spike counts move when their rates fluctuate beyond
   Poisson noise (:func:`counts_at_rest`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .collapse import detect_collapse
from .metrics import power_spectrum_distance, state_space_divergence
from .models.latent import LatentModel
from .models.observation import ObservationModel
from .models.rollout import free_run, infer_states

__all__ = ["EvaluationProtocol", "ProtocolResult", "COUNTS_COMPONENTS", "COLLAPSE_PENALTY",
           "counts_at_rest"]

#: Principal components of the reference in which spike-count runs are compared.
COUNTS_COMPONENTS = 3

#: Added to the selection score of a collapsed free run (fixed point or flat), so that any
#: non-collapsed checkpoint ranks before it while collapsed ones keep their order.
COLLAPSE_PENALTY = 1000.0


def counts_at_rest(segments, smoothing: float, min_excess: float = 0.1) -> bool:
    """Whether spike counts show no rate fluctuation beyond their Poisson noise.

    Counts smoothed with a Gaussian kernel of σ bins have Poisson-noise variance
    ≈ mean / (2σ√π) per unit (σ ≥ 1; ``mean`` for no smoothing). The counts are at rest when
    the variance beyond that is below ``min_excess`` of the total, summed over units.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> counts_at_rest([rng.poisson(2.0, (5000, 8))], 5.0)
    True
    >>> rates = 2.0 * (1 + np.sin(np.arange(5000) / 50.0))[:, None] * np.ones(8)
    >>> counts_at_rest([rng.poisson(rates)], 5.0)
    False
    """
    from scipy.ndimage import gaussian_filter1d
    sm = [gaussian_filter1d(np.asarray(s, dtype=np.float64), smoothing, axis=0, mode="nearest")
          if smoothing > 0 else np.asarray(s, dtype=np.float64) for s in segments]
    x = np.concatenate(sm)
    total = x.var(0).sum()
    if total <= 0:
        return True
    noise = x.mean(0).sum() / (2.0 * max(smoothing, 1.0) * math.sqrt(math.pi)) \
        if smoothing > 0 else x.mean(0).sum()
    return bool((total - noise) < min_excess * total)


@dataclass
class ProtocolResult:
    """The comparison of one free run with reference data (see :class:`EvaluationProtocol`).

    Attributes
    ----------
    dstsp, dh : float
        D_stsp and D_H (NaN when not computed).
    score : float
        D_stsp + dh_weight·D_H, plus ``COLLAPSE_PENALTY`` for a flat run; +inf for a
        non-finite one.
    collapse : str or None
        Why the model's free runs collapsed (``"non_finite"``, ``"exploding"``,
        ``"fixed_point"``) or None.
    reference, generated : ndarray
        Both series in the comparison space, (n, n_dims).
    latent : torch.Tensor
        The free-running states (n, state_dim), after the transient.
    """

    dstsp: float
    dh: float
    score: float
    collapse: str | None
    reference: np.ndarray = field(repr=False)
    generated: np.ndarray = field(repr=False)
    latent: torch.Tensor = field(repr=False)


@dataclass(frozen=True)
class EvaluationProtocol:
    """Free-run length, transient, comparison space and score (module docstring).

    Parameters
    ----------
    n_steps : int, optional
        Generated steps kept (default: the number of reference bins).
    min_steps, max_steps : int, optional
        Bounds of the default length.
    transient : float
        Steps dropped at the start, as a fraction of the steps kept.
    dh_weight : float
        Weight of D_H in the selection score.
    seed : int
        Seed of the Poisson draws (counts) and of the Gaussian-mixture D_stsp.
    collapse_starts : int
        Free runs checked for collapse from evenly spaced bins of the reference (0: only the
        scored run).
    collapse_steps : int
        Their length (at least the scored run's).

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr.models import GaussianObservation, ShallowPLRNN
    >>> t = np.arange(3000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], 1)
    >>> readout = GaussianObservation(2, 2); readout.fit_init(x)
    >>> res = EvaluationProtocol(max_steps=1000).evaluate(ShallowPLRNN(2, 8), readout, [x])
    >>> res.generated.shape
    (1000, 2)
    """

    n_steps: int | None = None
    min_steps: int = 1000
    max_steps: int | None = None
    transient: float = 0.25
    dh_weight: float = 4.0
    seed: int = 0
    collapse_starts: int = 6
    collapse_steps: int = 5000

    def length(self, n_ref: int) -> int:
        """Number of generated steps kept for a reference of ``n_ref`` bins."""
        if self.n_steps is not None:
            return int(self.n_steps)
        n = max(int(n_ref), self.min_steps)
        return n if self.max_steps is None else min(n, int(self.max_steps))

    @torch.no_grad()
    def evaluate(self, latent: LatentModel, readout: ObservationModel, segments,
                 z0: torch.Tensor | None = None) -> ProtocolResult:
        """Run the model freely from the first bin of ``segments`` and compare.

        Parameters
        ----------
        latent, readout
            The fitted latent map and observation layer.
        segments : list of ndarray
            Reference data, one (n_bins_k, n_channels) array per segment, in data units.
        z0 : torch.Tensor, optional
            Initial state (1, state_dim); default: the forced state of the first bin.

        Returns
        -------
        ProtocolResult
        """
        segments = [np.asarray(s) for s in segments]
        if z0 is None:
            z0 = infer_states(latent, readout, segments[0])[:1]
        ref = np.concatenate([readout.forcing_target(s) for s in segments]).astype(np.float64)
        n = self.length(len(ref))
        burn = int(round(self.transient * n))
        Z = free_run(latent, z0, n + burn)[0, burn:]
        rng = np.random.default_rng(self.seed)
        finite = bool(torch.isfinite(Z).all())
        with np.errstate(all="ignore"):
            gen = np.asarray(readout.simulated_forcing_target(Z, rng), dtype=np.float64) \
                if finite else np.full((n, ref.shape[1]), np.nan)
        to_space = self.space(ref, counts=readout.name == "poisson")
        ref_c, gen_c = to_space(ref), to_space(gen)
        if not finite:  # the scored run itself: nothing to compare
            return ProtocolResult(math.nan, math.nan, math.inf, "non_finite", ref_c, gen_c, Z)
        collapse = self._collapse(latent, readout, segments, Z, burn, to_space, ref_c)
        ds = state_space_divergence(ref_c, gen_c, seed=self.seed)
        m = min(len(ref_c), len(gen_c))
        dh = power_spectrum_distance(ref_c[:m], gen_c[:m]) if m > 64 else math.nan
        score = self.selection_score(ds, dh) + (COLLAPSE_PENALTY if collapse else 0.0)
        return ProtocolResult(float(ds), float(dh), score, collapse, ref_c, gen_c, Z)

    def _collapse(self, latent, readout, segments, Z, burn, to_space, ref_c):
        """Step 5: the first collapse reason of the scored run and the extra runs, or None."""
        if readout.name == "poisson" and counts_at_rest(segments, readout.smoothing):
            return None
        runs = [Z]
        if self.collapse_starts > 0:
            states = torch.cat([infer_states(latent, readout, s) for s in segments])
            pick = np.unique(np.linspace(0, len(states) - 1, self.collapse_starts).astype(int))
            steps = max(self.collapse_steps, len(Z))
            more = free_run(latent, states[torch.as_tensor(pick)], steps + burn)[:, burn:]
            runs += list(more)
        with np.errstate(all="ignore"):
            for run in runs:
                # judged on the noise-free read-out: Poisson draws of a fixed point still move
                reason = detect_collapse(to_space(readout.linear(run).cpu().numpy()), ref_c)
                if reason:
                    return reason
        return None

    def selection_score(self, dstsp: float, dh: float) -> float:
        """D_stsp + dh_weight·D_H (D_H left out when not computed); +inf if D_stsp is not finite.
        """
        if not math.isfinite(dstsp):
            return math.inf
        return float(dstsp + (self.dh_weight * dh if math.isfinite(dh) else 0.0))

    @staticmethod
    def space(ref: np.ndarray, *, counts: bool):
        """The map from forcing space to the comparison space (step 3), fixed by ``ref``.

        Returns
        -------
        callable
            (n, n_channels) forcing-space array -> (n, n_dims) standardised array.
        """
        mu = ref.mean(0)
        P = None
        if counts and ref.shape[1] > COUNTS_COMPONENTS:
            _, _, vt = np.linalg.svd(ref - mu, full_matrices=False)
            P = vt[:COUNTS_COMPONENTS].T
        centred = (ref - mu) if P is None else (ref - mu) @ P
        sd = centred.std(0)
        sd = np.where(sd > 0, sd, 1.0)

        def to_space(y):
            y = np.asarray(y, dtype=np.float64) - mu
            return (y if P is None else y @ P) / sd

        return to_space
