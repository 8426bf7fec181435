"""Observation layers behind one interface: ``loss``, ``mean``, ``invert``.

An observation layer maps latent states to the data and back. Its inverse gives the forcing
signal of sparsely forced BPTT from the data in the layer's "forcing space" y: the
pseudo-inverse ẑ = B⁺ (y − b) of the standardised signal for the Gaussian layer, the
maximum-likelihood latent of kernel-smoothed counts (y their link-inverse) for the Poisson
layer.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn
from torch.nn import functional as F

__all__ = ["ObservationModel", "GaussianObservation", "PoissonObservation",
           "OBSERVATION_MODELS", "make_observation_model"]


class ObservationModel(nn.Module):
    """Affine read-out y = B z[:M] + b with a data-specific likelihood.

    Parameters
    ----------
    n_obs : int
        Number of observed channels N.
    latent_dim : int
        Number M of latent units the read-out sees (the first M entries of the state).
    """

    name = "base"

    def __init__(self, n_obs: int, latent_dim: int):
        super().__init__()
        self.n_obs, self.latent_dim = int(n_obs), int(latent_dim)
        self.B = nn.Parameter(torch.zeros(self.n_obs, self.latent_dim))
        self.b = nn.Parameter(torch.zeros(self.n_obs))

    # -- data preparation (numpy, once per segment) ------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Data as the loss sees it, (n_bins, N) -> (n_bins, N)."""
        return np.asarray(x, dtype=np.float32)

    def forcing_target(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Data mapped into the read-out's linear space, (n_bins, N) -> (n_bins, N)."""
        raise NotImplementedError

    def fit_init(self, x: np.ndarray) -> None:
        """Initialise B and b from data (n_bins, N) with principal components."""
        y = self.forcing_target(x).astype(np.float64)
        mu = y.mean(0)
        _, _, vt = np.linalg.svd(y - mu, full_matrices=False)
        M, N = self.latent_dim, self.n_obs
        B = np.zeros((N, M))
        k = min(M, N, vt.shape[0])
        B[:, :k] = vt[:k].T
        with torch.no_grad():
            self.B.copy_(torch.as_tensor(B, dtype=self.B.dtype))
            self.b.copy_(torch.as_tensor(mu, dtype=self.b.dtype))

    # -- torch -------------------------------------------------------------------------
    def linear(self, z: torch.Tensor) -> torch.Tensor:
        """The affine read-out B z + b, (..., state_dim) -> (..., N)."""
        return z[..., :self.latent_dim] @ self.B.T + self.b

    def pinv(self) -> torch.Tensor:
        """Pseudo-inverse of B, shape (M, N); (BᵀB)⁻¹Bᵀ when B has full column rank."""
        return torch.linalg.pinv(self.B)

    def invert(self, y: torch.Tensor, pinv: torch.Tensor | None = None,
               rows=None) -> torch.Tensor:
        """Forcing states ẑ = B⁺(y − b) from forcing targets y, (..., N) -> (..., M).

        ``rows`` (indices of channels) inverts from those channels only, ``y`` then holding
        their targets; ``pinv`` (B⁺ of all channels) saves recomputing it.
        """
        if rows is not None:
            return (y - self.b[rows]) @ torch.linalg.pinv(self.B[rows]).T
        P = self.pinv() if pinv is None else pinv
        return (y - self.b) @ P.T

    def mean(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Expected observation in data units, (..., state_dim) -> (..., N)."""
        raise NotImplementedError

    @torch.no_grad()
    def simulated_forcing_target(self, z: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
        """What :meth:`forcing_target` gives for observations generated from states z.

        Model selection compares this with the forcing target of held-back data, so both pass
        through the same processing. The Gaussian layer returns the noise-free read-out B z + b.

        Parameters
        ----------
        z : torch.Tensor, shape (n_bins, state_dim)
            A trajectory of latent states.
        rng : numpy.random.Generator
            Source of observation noise, where the layer draws any.

        Returns
        -------
        ndarray, shape (n_bins, N), float64
        """
        return self.linear(z).cpu().numpy().astype(np.float64)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Mean loss of encoded data x given states z."""
        raise NotImplementedError

    def config(self) -> dict:
        return {"name": self.name, "n_obs": self.n_obs, "latent_dim": self.latent_dim}


class GaussianObservation(ObservationModel):
    """Gaussian read-out x = loc + scale ⊙ (B z + b) + noise; loss = MSE on standardised data.

    Examples
    --------
    >>> import numpy as np, torch
    >>> obs = GaussianObservation(3, 3)
    >>> x = np.random.default_rng(0).normal(size=(500, 3))
    >>> obs.fit_init(x)
    >>> y = torch.as_tensor(obs.forcing_target(x[:4]))
    >>> torch.allclose(obs.linear(obs.invert(y)), y, atol=1e-5)
    True
    """

    name = "gaussian"

    def __init__(self, n_obs: int, latent_dim: int):
        super().__init__(n_obs, latent_dim)
        self.register_buffer("loc", torch.zeros(self.n_obs, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(self.n_obs, dtype=torch.float64))

    def fit_init(self, x):
        x = np.asarray(x, dtype=np.float64)
        sd = x.std(0)
        sd[sd == 0] = 1.0
        self.loc.copy_(torch.as_tensor(x.mean(0)))
        self.scale.copy_(torch.as_tensor(sd))
        super().fit_init(x)

    def encode(self, x):
        x = np.asarray(x, dtype=np.float64)
        loc, scale = self.loc.detach().cpu().numpy(), self.scale.detach().cpu().numpy()
        return ((x - loc) / scale).astype(np.float32)

    forcing_target = encode

    def mean(self, z):
        y = self.linear(z)
        return self.loc.to(y.dtype) + self.scale.to(y.dtype) * y

    def loss(self, z, x):
        return F.mse_loss(self.linear(z), x)


class PoissonObservation(ObservationModel):
    """Poisson read-out: expected counts per bin = link(B z + b), link ``exp`` or ``softplus``.

    The forcing target is link⁻¹ of counts smoothed with a Gaussian kernel of ``smoothing``
    bins (plus a small floor so the inverse link is finite); the forcing state is the latent
    under which those smoothed counts are most likely (:meth:`invert`, ``n_newton`` Fisher
    scoring steps; 0 gives the least-squares B⁺(y − b)).

    Examples
    --------
    >>> import numpy as np, torch
    >>> obs = PoissonObservation(5, 2, link="softplus")
    >>> counts = np.random.default_rng(0).poisson(2.0, size=(300, 5))
    >>> obs.fit_init(counts)
    >>> r = obs.mean(torch.zeros(1, 2))
    >>> bool((r > 0).all())
    True
    """

    name = "poisson"

    def __init__(self, n_obs: int, latent_dim: int, link: str = "exp", smoothing: float = 2.0,
                 floor: float = 0.01, n_newton: int = 3):
        super().__init__(n_obs, latent_dim)
        if link not in ("exp", "softplus"):
            raise ValueError(f"link must be 'exp' or 'softplus'; got {link!r}.")
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0 bins; got {smoothing!r}.")
        self.link, self.smoothing, self.floor = link, float(smoothing), float(floor)
        if isinstance(n_newton, bool) or int(n_newton) != n_newton or n_newton < 0:
            raise ValueError(f"n_newton must be an integer >= 0; got {n_newton!r}.")
        self.n_newton = int(n_newton)

    #: Upper bound of the linear predictor under the exp link (e^12 ≈ 1.6e5 counts per bin):
    #: an unstable early model cannot overflow the rates to inf and poison the gradients.
    max_log_rate = 12.0

    def _link(self, y):
        return torch.exp(y.clamp(max=self.max_log_rate)) if self.link == "exp" else F.softplus(y)

    def _inverse_link(self, r: np.ndarray) -> np.ndarray:
        r = np.maximum(r, self.floor)
        return np.log(r) if self.link == "exp" else np.log(np.expm1(r))

    def forcing_target(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.smoothing > 0:
            x = gaussian_filter1d(x, self.smoothing, axis=0, mode="nearest")
        return self._inverse_link(x).astype(np.float32)

    def mean(self, z):
        return self._link(self.linear(z))

    def invert(self, y, pinv=None, rows=None):
        """Forcing states: the Poisson maximum-likelihood inverse of the read-out.

        ẑ_t maximises the Poisson log-likelihood Σ_i s_it log r_it − r_it of the smoothed
        counts s_t = link(y_t) under rates r_t = link(B z + b), with a ridge of 1e-4·‖B‖²/M
        on z (Fisher scoring from the least-squares start B⁺(y_t − b), ``n_newton`` steps,
        differentiable in B and b). Unlike the least-squares inverse of link⁻¹(s), it weighs
        each unit by its rate, so the many near-zero smoothed counts of low-rate units do not
        dominate through the floor of the log.

        Parameters
        ----------
        y : torch.Tensor, shape (..., N) (or (..., len(rows)))
            Forcing targets (:meth:`forcing_target`).
        pinv : torch.Tensor, optional
            B⁺, when the caller already has it (only used for the start).
        rows : array of int, optional
            Invert from these units only (e.g. held-in units); ``y`` then holds their targets.
        """
        z = super().invert(y, pinv, rows)
        B, b = (self.B, self.b) if rows is None else (self.B[rows], self.b[rows])
        if self.n_newton == 0:
            return z
        s = self._link(y)
        M = B.shape[1]
        eye = torch.eye(M, dtype=B.dtype, device=B.device)
        ridge = 1e-4 * (B * B).sum() / M
        for _ in range(self.n_newton):
            eta = (z @ B.T + b).clamp(max=self.max_log_rate)
            if self.link == "exp":
                r = torch.exp(eta)
                g = (s - r) @ B
                w = r
            else:
                r = F.softplus(eta)
                d = torch.sigmoid(eta)
                g = ((s / (r + 1e-8) - 1.0) * d) @ B
                w = d * d / (r + 1e-8)
            H = torch.einsum("...i,ij,ik->...jk", w, B, B) + ridge * eye
            z = z + torch.linalg.solve(H, (g - ridge * z).unsqueeze(-1)).squeeze(-1)
        return z

    @torch.no_grad()
    def simulated_forcing_target(self, z, rng):
        """Poisson counts drawn from the rates of z, smoothed and link-inverted like data.

        Comparing link⁻¹(smoothed counts) of data with the noise-free B z + b would reward a
        model for the spread that Poisson noise adds to the data; drawing counts puts both
        through the same noise and the same kernel.
        """
        rates = self.mean(z).cpu().numpy().astype(np.float64)
        counts = rng.poisson(np.clip(rates, 0.0, 1e6)).astype(np.float64)
        return self.forcing_target(counts).astype(np.float64)

    def loss(self, z, x):
        if self.link == "exp":
            return _PoissonExpLoss.apply(z[..., :self.latent_dim], self.B, self.b, x,
                                         self.max_log_rate)
        y = self.linear(z)
        r = F.softplus(y)
        return (r - x * torch.log(r + 1e-8)).mean()

    def config(self):
        return {**super().config(), "link": self.link, "smoothing": self.smoothing,
                "floor": self.floor, "n_newton": self.n_newton}


OBSERVATION_MODELS = {"gaussian": GaussianObservation, "poisson": PoissonObservation}


class _PoissonExpLoss(torch.autograd.Function):
    r"""mean(exp(y) − x·y) with y = min(B z + b, c), as one autograd node.

    The Poisson negative log-likelihood of the exp link up to constants, what
    :meth:`PoissonObservation.loss` returns. One node instead of the seven element-wise passes
    (and their saved tensors) of the autograd graph over the (batch, L, N) rates; the gradient
    with respect to y is exp(y) − x (zero where the bound c is reached), and the products of
    the backward pass are taken in the layouts that are fast for a few latent units.
    """

    @staticmethod
    def forward(ctx, z, B, b, x, c):
        M, N = z.shape[-1], B.shape[0]
        z2 = z.reshape(-1, M)
        x2 = x.reshape(-1, N)
        y = torch.addmm(b, z2, B.t()).clamp_(max=c)
        r = torch.exp(y)
        n = r.numel()
        total = r.sum()
        loss = (total - torch.dot(x2.reshape(-1), y.reshape(-1))) / n
        g = r.sub_(x2)  # dL/dy · n, before the bound
        if float(total) >= 0.5 * math.exp(c):  # else no rate can have reached the bound
            g.masked_fill_(y >= c, 0.0)
        ctx.save_for_backward(z2, B, g)
        ctx.z_shape, ctx.n = z.shape, n
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        z2, B, g = ctx.saved_tensors
        s = grad / ctx.n
        gz = gB = gb = None
        if ctx.needs_input_grad[0]:
            gz = (g @ B.t().contiguous().t()).mul_(s).view(ctx.z_shape)  # B column-major
        if ctx.needs_input_grad[1]:
            gB = (z2.t() @ g).t().mul(s)
        if ctx.needs_input_grad[2]:
            gb = g.sum(0).mul_(s)
        return gz, gB, gb, None, None


def make_observation_model(name: str, n_obs: int, latent_dim: int, **kwargs) -> ObservationModel:
    """Build an observation layer by name (``"gaussian"`` or ``"poisson"``)."""
    try:
        cls = OBSERVATION_MODELS[name]
    except KeyError:
        raise ValueError(f"observation must be one of {sorted(OBSERVATION_MODELS)}; got {name!r}.") from None
    return cls(n_obs, latent_dim, **kwargs)
