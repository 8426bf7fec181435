"""Latent maps z_t = F(z_{t-1}) behind one interface: ``step``, ``unroll``, ``jacobian``, ``config``.

All models act on a batch of states of shape (batch, state_dim). The PLRNN family has analytic
Jacobians; the LSTM and tanh RNN use autograd.

:meth:`LatentModel.unroll` runs several free steps in one call; training rolls windows out with
it (:func:`nwb_dsr.training.forcing.rollout`). By default it loops over :meth:`~LatentModel.step`
under autograd; the shallow PLRNN fuses the stretch into one autograd node with a hand-written
backward pass (:class:`_ShallowUnroll`): no per-step graph, and the weight gradients of all
steps in one matrix product each (about 1.3x less CPU time per window than the autograd loop
on one thread; ``benchmarks/throughput.py``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["LatentModel", "PLRNN", "ShallowPLRNN", "ClippedShallowPLRNN", "DendriticPLRNN",
           "LSTMCellModel", "TanhRNN", "LATENT_MODELS", "make_latent_model"]


class LatentModel(nn.Module):
    """Base class of latent maps.

    Subclasses implement :meth:`step` and may override :meth:`jacobian` with an analytic form.

    Parameters
    ----------
    latent_dim : int
        Size M of the latent state observed by the output layer.
    """

    name = "base"

    def __init__(self, latent_dim: int):
        super().__init__()
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer; got {latent_dim!r}.")
        self.latent_dim = int(latent_dim)

    @property
    def state_dim(self) -> int:
        """Dimension of the full state vector (``latent_dim`` except for the LSTM)."""
        return self.latent_dim

    def step(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """One step of the map, (batch, state_dim) -> (batch, state_dim)."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.step(z)

    def unroll(self, z: torch.Tensor, n_steps: int) -> torch.Tensor:
        """``n_steps`` free steps from z (batch, state_dim), differentiable.

        Returns
        -------
        torch.Tensor, shape (batch, n_steps, state_dim)
            z_1 … z_n (the initial state is not included).
        """
        out = []
        for _ in range(int(n_steps)):
            z = self.step(z)
            out.append(z)
        return torch.stack(out, dim=1)

    def jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """Jacobians dF/dz at a batch of states, shape (batch, state_dim, state_dim)."""
        z = z.detach()
        f = lambda x: self.step(x.unsqueeze(0)).squeeze(0)  # noqa: E731
        return torch.func.vmap(torch.func.jacrev(f))(z)

    def config(self) -> dict:
        """Hyper-parameters that rebuild an identical (untrained) model."""
        return {"name": self.name, "latent_dim": self.latent_dim}

    def regularization(self) -> torch.Tensor:
        """Penalty added to the loss (zero by default)."""
        return torch.zeros((), device=next(self.parameters()).device)

    def numpy_step(self):
        """A float64 NumPy version of :meth:`step` for states (..., state_dim), or None.

        Free-running generation on the CPU uses it when available (one trajectory or a batch):
        for the small maps here NumPy's per-call overhead is several times lower than torch's.
        """
        return None

    def _np(self, name):
        return getattr(self, name).detach().cpu().numpy().astype(np.float64)


def _uniform(shape, bound, gen):
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound


class PLRNN(LatentModel):
    r"""Piecewise-linear RNN  z' = A ⊙ z + W · relu(z) + h.

    A is diagonal (a vector), W has a zero diagonal.

    Examples
    --------
    >>> import torch
    >>> m = PLRNN(4, seed=0)
    >>> m.step(torch.zeros(2, 4)).shape
    torch.Size([2, 4])
    """

    name = "plrnn"

    def __init__(self, latent_dim: int, seed: int = 0, **_):
        super().__init__(latent_dim)
        g = torch.Generator().manual_seed(seed)
        M = self.latent_dim
        self.A = nn.Parameter(torch.full((M,), 0.9, dtype=torch.float64).float())
        self.W = nn.Parameter(_uniform((M, M), 0.5 / math.sqrt(M), g).float())
        self.h = nn.Parameter(torch.zeros(M))
        self.register_buffer("offdiag", 1.0 - torch.eye(M))

    def step(self, z):
        return self.A * z + torch.relu(z) @ (self.W * self.offdiag).T + self.h

    def jacobian(self, z):
        W = self.W * self.offdiag
        d = (z > 0).to(z.dtype)
        return torch.diag_embed(self.A.expand_as(z)) + W.unsqueeze(0) * d.unsqueeze(1)

    def numpy_step(self):
        A, h = self._np("A"), self._np("h")
        W = self._np("W") * self._np("offdiag")
        Wt = W.T.copy()
        return lambda z: A * z + np.maximum(z, 0.0) @ Wt + h


class ShallowPLRNN(LatentModel):
    r"""Shallow PLRNN  z' = A ⊙ z + W₁ · relu(W₂ z + h₂) + h₁  with hidden width L.

    Examples
    --------
    >>> import torch
    >>> m = ShallowPLRNN(3, hidden_dim=16, seed=0)
    >>> m.jacobian(torch.ones(5, 3)).shape
    torch.Size([5, 3, 3])
    """

    name = "shallow_plrnn"

    def __init__(self, latent_dim: int, hidden_dim: int = 64, seed: int = 0, **_):
        super().__init__(latent_dim)
        if int(hidden_dim) < 1:
            raise ValueError(f"hidden_dim must be a positive integer; got {hidden_dim!r}.")
        self.hidden_dim = L = int(hidden_dim)
        M = self.latent_dim
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.full((M,), 0.95))
        self.W1 = nn.Parameter(_uniform((M, L), 1.0 / math.sqrt(L), g).float())
        self.W2 = nn.Parameter(_uniform((L, M), 1.0 / math.sqrt(M), g).float())
        self.h1 = nn.Parameter(torch.zeros(M))
        self.h2 = nn.Parameter(_uniform((L,), 1.0, g).float())

    def _hidden(self, z):
        return torch.relu(z @ self.W2.T + self.h2)

    def step(self, z):
        return torch.addmm(self.h1, self._hidden(z), self.W1.T) + self.A * z

    def _hidden_grad(self, z):
        return ((z @ self.W2.T + self.h2) > 0).to(z.dtype)

    def unroll(self, z, n_steps):
        """``n_steps`` free steps as one autograd node (:class:`_ShallowUnroll`).

        Same values and gradients as looping over :meth:`step` (up to float rounding).

        Examples
        --------
        >>> import torch
        >>> m = ShallowPLRNN(3, hidden_dim=16, seed=0)
        >>> z0 = torch.randn(4, 3)
        >>> loop = torch.stack([m.step(z0), m.step(m.step(z0))], 1)
        >>> torch.allclose(m.unroll(z0, 2), loop, atol=1e-6)
        True
        """
        n = int(n_steps)
        if n <= 1:
            return super().unroll(z, n)
        return _ShallowUnroll.apply(z, self.A, self.W1, self.W2, self.h1, self.h2, n)

    def jacobian(self, z):
        d = self._hidden_grad(z)  # (B, L)
        J = (self.W1.unsqueeze(0) * d.unsqueeze(1)) @ self.W2  # (B, M, M)
        return J + torch.diag_embed(self.A.expand_as(z))

    def config(self):
        return {**super().config(), "hidden_dim": self.hidden_dim}

    def numpy_step(self):
        """The step as two products of augmented vectors: u = relu([z, 1] · [W₂ᵀ; h₂]), then
        z' = [u, z, 1] · [W₁ᵀ; diag(A); h₁] (four NumPy calls a step instead of seven)."""
        A, W1, W2, h1, h2 = (self._np(n) for n in ("A", "W1", "W2", "h1", "h2"))
        W2a = np.vstack([W2.T, h2[None]])                   # (M + 1, L)
        W1a = np.vstack([W1.T, np.diag(A), h1[None]])       # (L + M + 1, M)
        ones: dict = {}

        def step(z):
            one = ones.get(z.shape[:-1])
            if one is None:
                one = ones.setdefault(z.shape[:-1], np.ones(z.shape[:-1] + (1,)))
            za = np.concatenate((z, one), axis=-1)
            u = np.dot(za, W2a)
            np.maximum(u, 0.0, out=u)
            return np.dot(np.concatenate((u, za), axis=-1), W1a)
        return step


class ClippedShallowPLRNN(ShallowPLRNN):
    r"""Clipped shallow PLRNN  z' = A ⊙ z + W₁ [relu(W₂ z + h₂) − relu(W₂ z)] + h₁.

    The clipped non-linearity is bounded, so trajectories cannot diverge when |A| < 1.
    """

    name = "clipped_shallow_plrnn"

    def unroll(self, z, n_steps):
        """The loop over :meth:`step` (a fused version of the clipped map measured slower:
        its two kinks need two masks per step)."""
        return LatentModel.unroll(self, z, n_steps)

    def _hidden(self, z):
        u = z @ self.W2.T
        return torch.relu(u + self.h2) - torch.relu(u)

    def _hidden_grad(self, z):
        u = z @ self.W2.T
        return (u + self.h2 > 0).to(z.dtype) - (u > 0).to(z.dtype)

    def numpy_step(self):
        A, W1, W2, h1, h2 = (self._np(n) for n in ("A", "W1", "W2", "h1", "h2"))
        W1t, W2t = W1.T.copy(), W2.T.copy()

        def step(z):
            u = z @ W2t
            return A * z + (np.maximum(u + h2, 0.0) - np.maximum(u, 0.0)) @ W1t + h1
        return step


class DendriticPLRNN(LatentModel):
    r"""Dendritic PLRNN  z' = A ⊙ z + W · Σ_b α_b relu(z − θ_b) + h  with B bases.

    W has a zero diagonal; the thresholds θ_b are per unit.
    """

    name = "dendritic_plrnn"

    def __init__(self, latent_dim: int, n_bases: int = 8, seed: int = 0, **_):
        super().__init__(latent_dim)
        if int(n_bases) < 1:
            raise ValueError(f"n_bases must be a positive integer; got {n_bases!r}.")
        self.n_bases = B = int(n_bases)
        M = self.latent_dim
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.full((M,), 0.9))
        self.W = nn.Parameter(_uniform((M, M), 0.5 / math.sqrt(M), g).float())
        self.h = nn.Parameter(torch.zeros(M))
        self.alpha = nn.Parameter(_uniform((B,), 1.0 / B, g).float())
        self.theta = nn.Parameter(torch.randn((M, B), generator=g, dtype=torch.float64).float())
        self.register_buffer("offdiag", 1.0 - torch.eye(M))

    def step(self, z):
        phi = (torch.relu(z.unsqueeze(-1) - self.theta) * self.alpha).sum(-1)
        return self.A * z + phi @ (self.W * self.offdiag).T + self.h

    def jacobian(self, z):
        dphi = ((z.unsqueeze(-1) - self.theta > 0).to(z.dtype) * self.alpha).sum(-1)  # (B, M)
        W = self.W * self.offdiag
        return torch.diag_embed(self.A.expand_as(z)) + W.unsqueeze(0) * dphi.unsqueeze(1)

    def config(self):
        return {**super().config(), "n_bases": self.n_bases}

    def numpy_step(self):
        A, h, alpha, theta = (self._np(n) for n in ("A", "h", "alpha", "theta"))
        W = self._np("W") * self._np("offdiag")
        Wt = W.T.copy()
        return lambda z: A * z + (np.maximum(z[..., None] - theta, 0.0) @ alpha) @ Wt + h


class LSTMCellModel(LatentModel):
    r"""Autonomous LSTM: the state is [h, c] (2·latent_dim); gates are driven by h alone.

    Examples
    --------
    >>> import torch
    >>> LSTMCellModel(3, seed=0).step(torch.zeros(1, 6)).shape
    torch.Size([1, 6])
    """

    name = "lstm"

    def __init__(self, latent_dim: int, seed: int = 0, **_):
        super().__init__(latent_dim)
        H = self.latent_dim
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(_uniform((4 * H, H), 1.0 / math.sqrt(H), g).float())
        b = torch.zeros(4 * H)
        b[H:2 * H] = 1.0  # forget-gate bias
        self.b = nn.Parameter(b)

    @property
    def state_dim(self):
        return 2 * self.latent_dim

    def step(self, z):
        H = self.latent_dim
        h, c = z[..., :H], z[..., H:]
        gates = torch.addmm(self.b, h, self.W.T)
        i, f, gg, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        return torch.cat([h, c], dim=-1)


class TanhRNN(LatentModel):
    r"""Vanilla RNN  z' = tanh(W z + h)."""

    name = "rnn"

    def __init__(self, latent_dim: int, seed: int = 0, **_):
        super().__init__(latent_dim)
        M = self.latent_dim
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter((torch.eye(M, dtype=torch.float64) + _uniform((M, M), 0.5 / math.sqrt(M), g)).float())
        self.h = nn.Parameter(torch.zeros(M))

    def step(self, z):
        return torch.tanh(torch.addmm(self.h, z, self.W.T))

    def jacobian(self, z):
        d = 1.0 - self.step(z) ** 2
        return d.unsqueeze(-1) * self.W.unsqueeze(0)

    def numpy_step(self):
        W, h = self._np("W"), self._np("h")
        Wt = W.T.copy()
        return lambda z: np.tanh(z @ Wt + h)


class _ShallowUnroll(torch.autograd.Function):
    r"""n steps of z' = A ⊙ z + W₁ φ(W₂ z + h₂) + h₁ as one autograd node.

    φ = relu, the shallow PLRNN's non-linearity. The forward pass keeps the states and the
    hidden activations (time-major buffers);
    the backward pass walks back through time with two small products per step and then forms
    the parameter gradients of all steps at once (one matrix product per weight).
    """

    @staticmethod
    def forward(ctx, z0, A, W1, W2, h1, h2, n):
        B, M = z0.shape
        H = W2.shape[0]
        Z = z0.new_empty(n + 1, B, M)   # z_0 … z_n
        R = z0.new_empty(n, B, H)       # hidden activations φ
        Z[0] = z0
        W1t, W2t = W1.t(), W2.t()
        for t in range(n):
            z = Z[t]
            torch.clamp_min(torch.addmm(h2, z, W2t), 0.0, out=R[t])
            torch.addcmul(torch.addmm(h1, R[t], W1t), A, z, out=Z[t + 1])
        ctx.save_for_backward(Z, R, A, W1, W2)
        return Z[1:].transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        Z, R, A, W1, W2 = ctx.saved_tensors
        n, M, H = Z.shape[0] - 1, Z.shape[2], W2.shape[0]
        G = grad.transpose(0, 1)   # (n, B, M): dL/dz_t from outside the stretch
        Gz = torch.empty_like(G)   # total dL/dz_t, t = 1 … n
        Gr = torch.empty_like(R[0])  # dL/dφ_t of the current step
        Gv = torch.empty_like(R)   # dL/dv_t
        W2c = W2.t().contiguous().t()  # column-major: the fast layout of (B × H)(H × M)
        g = torch.zeros_like(Z[0])
        for t in range(n - 1, -1, -1):
            torch.add(g, G[t], out=Gz[t])
            g = Gz[t]
            torch.mm(g, W1, out=Gr)
            # relu: pass where the activation is positive (one kernel)
            torch.ops.aten.threshold_backward.grad_input(Gr, R[t], 0.0, grad_input=Gv[t])
            g = torch.addmm(A * g, Gv[t], W2c)
        Gz2, Zp, Gv2 = Gz.reshape(-1, M), Z[:-1].reshape(-1, M), Gv.reshape(-1, H)
        # products of the forms (k × N)(N × H) and (M × N)(N × H): the fast layouts
        gA = (Gz2 * Zp).sum(0)
        gW1 = Gz2.t() @ R.reshape(-1, H)
        gW2 = (Zp.t() @ Gv2).t()
        gh1 = Gz2.sum(0)
        gh2 = Gv2.sum(0)
        return g, gA, gW1, gW2, gh1, gh2, None


LATENT_MODELS = {cls.name: cls for cls in
                 (PLRNN, ShallowPLRNN, ClippedShallowPLRNN, DendriticPLRNN, LSTMCellModel, TanhRNN)}


def make_latent_model(name: str, latent_dim: int, **kwargs) -> LatentModel:
    """Build a latent model by name (one of ``LATENT_MODELS``).

    Examples
    --------
    >>> make_latent_model("plrnn", 5).state_dim
    5
    """
    try:
        cls = LATENT_MODELS[name]
    except KeyError:
        raise ValueError(f"model must be one of {sorted(LATENT_MODELS)}; got {name!r}.") from None
    return cls(latent_dim, **kwargs)
