"""Detection of collapsed free runs: :func:`detect_collapse`.

A reconstruction can predict one step ahead almost perfectly while its free run has lost the
dynamics: it settles onto a fixed point (flat output), or it explodes. Both are easy to miss
in the prediction error and obvious in a free run compared with the data it should imitate.
"""
from __future__ import annotations

import numpy as np

__all__ = ["detect_collapse", "describe_collapse", "CollapseWarning", "COLLAPSE_REASONS",
           "DAMPED_AMPLITUDE"]

#: The reasons :func:`detect_collapse` returns, and ``"drifting"``: the final check of the
#: best checkpoints found the longer free runs off the attractor that validation saw
#: (:func:`nwb_dsr.training.trainer.is_drifting`).
COLLAPSE_REASONS = ("non_finite", "exploding", "fixed_point", "damped", "drifting")

#: ``detect_collapse(..., damped=DAMPED_AMPLITUDE)``, as the evaluation protocol uses it for
#: continuous data: a free run whose amplitude is below a quarter of the data's (under 1/16 of
#: their variance) has settled onto a small oscillation or a slow decay that the data do not
#: show. Of ten fits to the OpenBCI EEG (``benchmarks/lfp_real.py``, seeds and τ of
#: ``benchmarks/RESULTS.md``), two ran at 0.08-0.20 of the data's amplitude from some of five
#: states of the held-out data and at 1.3-1.6 from the others (which attractor a run found
#: depended on its start); the other eight ran at 0.29-1.6 from every state.
DAMPED_AMPLITUDE = 0.25


class CollapseWarning(RuntimeWarning):
    """A model's free run collapsed (fixed point, flat or exploding) on data that are not."""


def detect_collapse(generated, reference, *, flat: float = 0.05, explode: float = 20.0,
                    tail: float = 0.5, damped: float | None = None):
    """Why a free run has collapsed, or None if it has not.

    Each channel is compared on the scale of the reference (the data): its mean ``m`` and
    standard deviation ``s`` over time. The rules, in order:

    - ``"non_finite"``: the free run contains NaN or inf.
    - ``"exploding"``: some value of the free run lies more than ``explode`` · s from m (a
      trajectory that runs away or oscillates far outside the data's range).
    - ``"fixed_point"``: over the last ``tail`` of the free run (its long-term behaviour) the
      standard deviation of every channel is below ``flat`` · s: the run has settled onto a
      fixed point or decays to one (a flat trajectory).
    - ``"damped"`` (only with ``damped``): over the same tail the run's root-mean-square
      amplitude about its own mean, over the channels, is below ``damped`` times the data's
      (the root mean square of s): it moves, but on a small oscillation or a slow decay the
      data do not show (:data:`DAMPED_AMPLITUDE` for continuous data; not for spike counts,
      whose smoothed counts carry Poisson noise a noise-free rate lacks).

    A reference at rest (every channel's s = 0) gives None: flat output is then correct.

    Parameters
    ----------
    generated : array of shape (n_steps,) or (n_steps, n_channels)
        The free run (after any transient), in the same space as ``reference``.
    reference : array of shape (n_bins,) or (n_bins, n_channels)
        The data it should imitate.
    flat : float
        Fraction of the data's standard deviation below which a channel counts as flat.
    explode : float
        Distance from the data's mean, in data standard deviations, beyond which the run
        counts as exploding.
    tail : float
        Final fraction of the free run inspected for flatness, in (0, 1].
    damped : float, optional
        Fraction of the data's amplitude below which a moving run counts as damped (default:
        not checked).

    Returns
    -------
    str or None
        One of ``COLLAPSE_REASONS``, or None.

    Raises
    ------
    ValueError
        If the shapes do not match in the number of channels, or a series is empty.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(2000) * 0.05
    >>> data = np.stack([np.sin(t), np.cos(t)], axis=1)
    >>> detect_collapse(data[::-1], data) is None
    True
    >>> detect_collapse(np.exp(-t)[:, None] * data, data)   # decays onto the origin
    'fixed_point'
    >>> detect_collapse(np.exp(0.05 * t)[:, None] * data, data)   # grows without bound
    'exploding'
    >>> detect_collapse(0.1 * data, data) is None, detect_collapse(0.1 * data, data, damped=0.25)
    (True, 'damped')
    """
    g = np.asarray(generated, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    g = g[:, None] if g.ndim == 1 else g
    r = r[:, None] if r.ndim == 1 else r
    if g.ndim != 2 or r.ndim != 2 or g.shape[1] != r.shape[1]:
        raise ValueError(f"generated and reference must be (n, n_channels) arrays with the same "
                         f"number of channels; got shapes {g.shape} and {r.shape}.")
    if len(g) == 0 or len(r) == 0:
        raise ValueError("generated and reference must not be empty.")
    if not 0 < tail <= 1:
        raise ValueError(f"tail must lie in (0, 1]; got {tail!r}.")
    if damped is not None and not 0 < damped < 1:
        raise ValueError(f"damped must lie in (0, 1); got {damped!r}.")
    if not np.all(np.isfinite(g)):
        return "non_finite"
    m, s = r.mean(0), r.std(0)
    moving = s > 1e-12 * (1.0 + np.abs(m))
    if not moving.any():
        return None
    g, m, s = g[:, moving], m[moving], s[moving]
    if np.any(np.abs(g - m) > explode * s):
        return "exploding"
    last = g[len(g) - max(2, int(round(tail * len(g)))):]
    sd = last.std(0)
    if np.all(sd < flat * s):
        return "fixed_point"
    if damped is not None and np.sqrt(np.mean(sd ** 2)) < damped * np.sqrt(np.mean(s ** 2)):
        return "damped"
    return None


_TEXT = {
    "non_finite": "the free run became NaN or infinite",
    "exploding": "the free run exploded (it leaves the data's range by more than 20 standard "
                 "deviations)",
    "fixed_point": "the free run collapsed onto a fixed point (it stays flat while the data "
                   "vary)",
    "damped": "the free run settled onto a small oscillation (under a quarter of the data's "
              "amplitude)",
    "drifting": "the free run drifted off the attractor (its longer runs scored more than "
                "twice as badly as in validation)",
}


def describe_collapse(reason) -> str:
    """A sentence for a reason returned by :func:`detect_collapse` ("" for None)."""
    if reason is None:
        return ""
    return _TEXT.get(str(reason), f"the free run collapsed ({reason})")
