"""Shared fixtures: small chaotic series and the location of ../shared/data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _lorenz(t, s, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = s
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


@pytest.fixture(scope="session")
def lorenz_series():
    """Lorenz-63 on its attractor, dt = 0.01, 6000 steps, shape (6000, 3)."""
    t = np.arange(7000) * 0.01
    sol = solve_ivp(_lorenz, (0, t[-1]), [1.0, 1.0, 1.0], t_eval=t, rtol=1e-9, atol=1e-9)
    return sol.y.T[1000:].copy()


@pytest.fixture(scope="session")
def shared_benchmarks():
    d = SHARED / "benchmarks"
    if not d.is_dir():
        pytest.skip(f"shared benchmark data not found at {d}")
    return d
