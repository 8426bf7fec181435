"""The trajectories of a fit that are stored with it: forced latents, predictions, a free run."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..observations import Observations, as_observations

__all__ = ["Trajectories", "trajectories"]


@dataclass
class Trajectories:
    """What :func:`nwb_dsr.write_dynamics` stores next to a fitted model.

    Attributes
    ----------
    latent : list of ndarray or None
        Forced latent states, one (n_bins_k, state_dim) array per segment of the data.
    predicted : list of ndarray or None
        One-step-ahead expected observations, one (n_bins_k, n_channels) array per segment.
    generated_latent, generated_mean, generated_samples : ndarray or None
        A free run of ``n_generate`` steps from ``initial_state``: latent states, expected
        observations, and observations drawn with ``seed``.
    initial_state : ndarray or None
    seed : int
    """

    latent: list | None
    predicted: list | None
    generated_latent: np.ndarray | None
    generated_mean: np.ndarray | None
    generated_samples: np.ndarray | None
    initial_state: np.ndarray | None
    seed: int

    @property
    def n_generate(self) -> int:
        return 0 if self.generated_latent is None else int(self.generated_latent.shape[0])


def trajectories(estimator, X=None, *, n_generate: int | None = None,
                 seed: int | None = None) -> Trajectories:
    """Forced latents and predictions on X, and a free run started from X's first bin.

    Parameters
    ----------
    estimator : DSR
        A fitted estimator.
    X : Observations or array, optional
        Data with the fitted channels; without it only a free run from the zero state is made.
    n_generate : int, optional
        Length of the free run (default: the number of bins of X, at most 10,000; 1,000
        without X); 0 makes none.
    seed : int, optional
        Seed of the drawn observations (default: the estimator's seed).

    Returns
    -------
    Trajectories

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import DSR
    >>> x = np.random.default_rng(0).normal(size=(400, 2)).cumsum(0) * 0.1
    >>> est = DSR(latent_dim=2, hidden_dim=4, tau=5, epochs=1, progress=False).fit(x)
    >>> tr = trajectories(est, x, n_generate=50)
    >>> tr.latent[0].shape, tr.generated_mean.shape
    ((400, 2), (50, 2))
    """
    check_is_fitted(estimator, "latent_model_")
    obs: Observations | None = None
    if X is not None:
        obs = as_observations(X, bin_size=estimator.bin_size_,
                              n_channels=estimator.n_features_in_)
    if n_generate is None:
        n_generate = min(obs.n_bins, 10_000) if obs is not None else 1000
    if isinstance(n_generate, bool) or int(n_generate) < 0:
        raise ValueError(f"n_generate must be an integer >= 0; got {n_generate!r}.")
    seed = int(estimator.seed if seed is None else seed)
    latent = estimator.transform(obs) if obs is not None else None
    predicted = estimator.predict(obs, n_ahead=1) if obs is not None else None
    gl = gm = gs = z0 = None
    if int(n_generate) > 0:
        z0 = np.asarray(latent[0][0] if latent is not None
                        else np.zeros(estimator.latent_model_.state_dim), dtype=np.float32)
        gm, gl = estimator.generate(int(n_generate), z0=z0, return_latent=True)
        gs = estimator.generate(int(n_generate), z0=z0, sample=True, seed=seed)
    return Trajectories(latent, predicted, gl, gm, gs, z0, seed)
