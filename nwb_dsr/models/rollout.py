"""Running a latent map and inferring its states from data: free runs and forced states.

These are the two operations every part above the models needs: training forces the state
onto :func:`infer_states` of the data, and generation, validation, evaluation and the NWB
writer run the map freely with :func:`free_run`.
"""
from __future__ import annotations

import numpy as np
import torch

from .latent import LatentModel
from .observation import ObservationModel

__all__ = ["free_run", "pad_state", "infer_states", "mean_state"]


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
