"""Chaotic systems given as ODEs: integration on a regular grid and their Lyapunov spectra."""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.integrate import odeint, solve_ivp

__all__ = ["LORENZ63_LYAPUNOV_MAX", "lorenz63", "roessler", "lorenz_lyapunov_max",
           "lorenz_lyapunov_spectrum"]

#: Largest Lyapunov exponent of Lorenz-63 at (sigma, rho, beta) = (10, 28, 8/3), per Lorenz time
#: unit (Sprott, *Chaos and Time-Series Analysis*, 2003: 0.9056, 0, -14.5723).
LORENZ63_LYAPUNOV_MAX = 0.9056

_CLASSIC_LORENZ = (10.0, 28.0, 8.0 / 3.0)


# --------------------------------------------------------------------------------------------
# integrators
# --------------------------------------------------------------------------------------------

def _lorenz_rhs(sigma: float, rho: float, beta: float) -> tuple[Callable, Callable]:
    def f(s, t=0.0):
        x, y, z = s
        return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]

    def jac(s, t=0.0):
        x, y, z = s
        return [[-sigma, sigma, 0.0], [rho - z, -1.0, -x], [y, x, -beta]]

    return f, jac


def _roessler_rhs(a: float, b: float, c: float) -> tuple[Callable, Callable]:
    def f(s, t=0.0):
        x, y, z = s
        return [-y - z, x + a * y, b + z * (x - c)]

    def jac(s, t=0.0):
        x, y, z = s
        return [[0.0, -1.0, -1.0], [1.0, a, 0.0], [z, 0.0, x - c]]

    return f, jac


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
    return value


def _check_count(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _integrate(f: Callable, jac: Callable, x0: np.ndarray, times: np.ndarray, transient: float,
               method: str, rtol: float, atol: float) -> np.ndarray:
    """Integrate from ``x0`` for ``transient`` time units, then sample at ``times`` (> -transient).

    ``method="LSODA"`` uses :func:`scipy.integrate.odeint` (compiled LSODA with the analytic
    Jacobian; fast), any other name is passed to :func:`scipy.integrate.solve_ivp`.
    """
    t_eval, inverse = np.unique(np.asarray(times, dtype=float) + transient, return_inverse=True)
    if method == "LSODA":
        grid = np.concatenate([[0.0], t_eval]) if t_eval[0] > 0 else t_eval
        out = odeint(f, x0, grid, Dfun=jac, rtol=rtol, atol=atol, mxstep=10**6)
        out = out[1:] if t_eval[0] > 0 else out
    else:
        sol = solve_ivp(lambda t, s: f(s, t), (0.0, float(t_eval[-1])), x0, method=method,
                        t_eval=t_eval, rtol=rtol, atol=atol,
                        **({"jac": lambda t, s: jac(s, t)} if method in ("Radau", "BDF") else {}))
        if not sol.success:
            raise RuntimeError(f"The ODE integration failed ({sol.message}); try method='LSODA'.")
        out = sol.y.T
    if not np.all(np.isfinite(out)):
        raise RuntimeError("The ODE integration diverged (non-finite state); check the system "
                           "parameters and the initial condition x0.")
    return out[inverse.ravel()]


def _initial_state(x0, default_low, default_high, rng: np.random.Generator) -> np.ndarray:
    if x0 is None:
        return rng.uniform(default_low, default_high)
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != (3,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"x0 must be 3 finite numbers (the initial state); got {x0!r}.")
    return x0


def _sample(rhs, n_steps, dt, x0, x0_box, transient, seed, method, rtol, atol) -> np.ndarray:
    """``n_steps`` samples ``dt`` apart of the ODE ``rhs`` = (f, jac) after ``transient``."""
    n_steps = _check_count(n_steps, "n_steps")
    dt = _check_positive(dt, "dt")
    if transient < 0:
        raise ValueError(f"transient must be >= 0 (time units); got {transient!r}.")
    x0 = _initial_state(x0, *x0_box, np.random.default_rng(seed))
    f, jac = rhs
    return _integrate(f, jac, x0, np.arange(n_steps) * dt, float(transient), method, rtol, atol)


def lorenz63(n_steps: int, dt: float = 0.01, sigma: float = 10.0, rho: float = 28.0,
             beta: float = 8.0 / 3.0, x0=None, transient: float = 50.0, seed=None,
             method: str = "LSODA", rtol: float = 1e-11, atol: float = 1e-11) -> np.ndarray:
    """Integrate the Lorenz-63 system on a regular grid, after a discarded transient.

    ``dx/dt = sigma (y - x)``, ``dy/dt = x (rho - z) - y``, ``dz/dt = x y - beta z``.

    Parameters
    ----------
    n_steps : int
        Number of samples returned.
    dt : float, default 0.01
        Sampling interval in Lorenz time units.
    sigma, rho, beta : float
        System parameters (default: the classic chaotic 10, 28, 8/3).
    x0 : array_like of shape (3,), optional
        Initial state at the start of the transient. Default: uniform at random in
        [-15, 15] x [-20, 20] x [5, 40], drawn from ``seed``.
    transient : float, default 50.0
        Lorenz time units integrated from ``x0`` and discarded, so that the returned trajectory
        lies on the attractor.
    seed : int or numpy.random.Generator, optional
        Random state for the initial condition (ignored when ``x0`` is given).
    method : str, default "LSODA"
        ``"LSODA"`` uses :func:`scipy.integrate.odeint` with the analytic Jacobian; any
        :func:`scipy.integrate.solve_ivp` method name (``"DOP853"``, ``"RK45"``, ...) is also
        accepted (slower).
    rtol, atol : float, default 1e-11
        Integration tolerances.

    Returns
    -------
    ndarray of shape (n_steps, 3)
        The state (x, y, z) at times ``0, dt, ..., (n_steps - 1) dt`` after the transient.

    Examples
    --------
    >>> from nwb_dsr.datasets import lorenz63
    >>> x = lorenz63(500, seed=0)
    >>> x.shape
    (500, 3)
    >>> bool(abs(x[:, 0]).max() < 25 and 0 < x[:, 2].min() and x[:, 2].max() < 50)
    True
    """
    return _sample(_lorenz_rhs(float(sigma), float(rho), float(beta)), n_steps, dt, x0,
                   ([-15.0, -20.0, 5.0], [15.0, 20.0, 40.0]), transient, seed, method, rtol, atol)


def roessler(n_steps: int, dt: float = 0.05, a: float = 0.2, b: float = 0.2, c: float = 5.7,
             x0=None, transient: float = 200.0, seed=None, method: str = "LSODA",
             rtol: float = 1e-11, atol: float = 1e-11) -> np.ndarray:
    """Integrate the Rössler system on a regular grid, after a discarded transient.

    ``dx/dt = -y - z``, ``dy/dt = x + a y``, ``dz/dt = b + z (x - c)``.

    Parameters
    ----------
    n_steps : int
        Number of samples returned.
    dt : float, default 0.05
        Sampling interval in Rössler time units (one loop takes about 6 units).
    a, b, c : float
        System parameters (default: the classic chaotic 0.2, 0.2, 5.7).
    x0 : array_like of shape (3,), optional
        Initial state at the start of the transient. Default: uniform at random in
        [-5, 5] x [-5, 5] x [0, 1], drawn from ``seed``.
    transient : float, default 200.0
        Time units integrated from ``x0`` and discarded.
    seed, method, rtol, atol
        As in :func:`lorenz63`.

    Returns
    -------
    ndarray of shape (n_steps, 3)
        The state (x, y, z) every ``dt`` after the transient.

    Examples
    --------
    >>> from nwb_dsr.datasets import roessler
    >>> x = roessler(400, seed=0)
    >>> x.shape, bool(abs(x[:, :2]).max() < 15 and x[:, 2].min() >= 0)
    ((400, 3), True)
    """
    return _sample(_roessler_rhs(float(a), float(b), float(c)), n_steps, dt, x0,
                   ([-5.0, -5.0, 0.0], [5.0, 5.0, 1.0]), transient, seed, method, rtol, atol)


# --------------------------------------------------------------------------------------------
# Lyapunov exponents of the ODE (QR / Benettin method)
# --------------------------------------------------------------------------------------------

def _benettin(f_batch: Callable, jac_batch: Callable, starts: np.ndarray, dt: float, t_max: float,
              t_transient: float, renorm_every: int) -> np.ndarray:
    """Lyapunov spectrum by the QR method, averaged over a batch of starting states.

    The state and an orthonormal tangent basis Q are advanced together with RK4 (step ``dt``)
    through ``dx/dt = f(x)``, ``dQ/dt = J(x) Q``; every ``renorm_every`` steps Q is
    re-orthonormalised by QR and ``log|diag R|`` accumulated (after ``t_transient``, which lets
    Q align with the Lyapunov vectors). Returns the spectrum per time unit, shape (dim,).
    """
    x = np.array(starts, dtype=float)
    n_batch, dim = x.shape
    q = np.broadcast_to(np.eye(dim), (n_batch, dim, dim)).copy()
    n_skip = int(np.ceil(t_transient / (dt * renorm_every)))
    n_keep = max(1, int(round(t_max / (dt * renorm_every))))
    acc = np.zeros((n_batch, dim))

    def g(xs, qs):
        return f_batch(xs), jac_batch(xs) @ qs

    for block in range(n_skip + n_keep):
        for _ in range(renorm_every):
            k1x, k1q = g(x, q)
            k2x, k2q = g(x + 0.5 * dt * k1x, q + 0.5 * dt * k1q)
            k3x, k3q = g(x + 0.5 * dt * k2x, q + 0.5 * dt * k2q)
            k4x, k4q = g(x + dt * k3x, q + dt * k3q)
            x = x + dt / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
            q = q + dt / 6.0 * (k1q + 2.0 * k2q + 2.0 * k3q + k4q)
        q, r = np.linalg.qr(q)
        diag = np.diagonal(r, axis1=1, axis2=2)
        q = q * np.sign(diag)[:, None, :]
        if block >= n_skip:
            acc += np.log(np.abs(diag))
    if not np.all(np.isfinite(acc)):
        raise RuntimeError("The Lyapunov estimate diverged (non-finite values); use a smaller dt.")
    return np.sort(acc.mean(axis=0) / (n_keep * renorm_every * dt))[::-1]


def lorenz_lyapunov_spectrum(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                             t_max: float = 50.0, n_trajectories: int = 64, dt: float = 0.01,
                             transient: float = 5.0, renorm_every: int = 10,
                             seed=0) -> np.ndarray:
    """Lyapunov spectrum of the Lorenz-63 ODE by the QR (Benettin) method.

    ``n_trajectories`` starting states are taken on the attractor (spread along one long
    trajectory integrated from a random state), then each state is advanced with an orthonormal
    tangent basis through the analytic Jacobian (RK4, step ``dt``), re-orthonormalised by QR
    every ``renorm_every`` steps; the log-stretching factors ``log|diag R|`` are accumulated
    after a tangent transient and averaged over time and trajectories. The spectrum sums to
    ``-(sigma + 1 + beta)`` up to integration error, a built-in check.

    Parameters
    ----------
    sigma, rho, beta : float
        Lorenz-63 parameters (default: 10, 28, 8/3).
    t_max : float, default 50.0
        Averaging time per trajectory, in Lorenz time units. The total averaging time is
        ``n_trajectories * t_max``; its statistical error falls like its inverse square root
        (the defaults give lambda_max to about 0.5 % in under 2 s).
    n_trajectories : int, default 64
        Independent starting states advanced together (vectorised, so more trajectories cost
        little extra time).
    dt : float, default 0.01
        RK4 step in Lorenz time units.
    transient : float, default 5.0
        Time units over which the tangent basis aligns, not counted.
    renorm_every : int, default 10
        RK4 steps between QR re-orthonormalisations.
    seed : int or numpy.random.Generator, default 0
        Random state for the first initial condition.

    Returns
    -------
    ndarray of shape (3,)
        The exponents per Lorenz time unit, largest first.

    Examples
    --------
    >>> from nwb_dsr.datasets import lorenz_lyapunov_spectrum
    >>> lam = lorenz_lyapunov_spectrum(t_max=10.0, n_trajectories=8)
    >>> round(float(lam.sum()), 2)   # = -(sigma + 1 + beta)
    -13.67
    """
    n_trajectories = _check_count(n_trajectories, "n_trajectories")
    renorm_every = _check_count(renorm_every, "renorm_every")
    t_max = _check_positive(t_max, "t_max")
    dt = _check_positive(dt, "dt")
    sigma, rho, beta = float(sigma), float(rho), float(beta)
    rng = np.random.default_rng(seed)
    f, jac = _lorenz_rhs(sigma, rho, beta)
    # starting states on the attractor, 5 time units apart along one trajectory
    starts = _integrate(f, jac, rng.uniform([-15.0, -20.0, 5.0], [15.0, 20.0, 40.0]),
                        np.arange(n_trajectories) * 5.0, 50.0, "LSODA", 1e-10, 1e-10)

    def f_batch(x):
        return np.stack([sigma * (x[:, 1] - x[:, 0]), x[:, 0] * (rho - x[:, 2]) - x[:, 1],
                         x[:, 0] * x[:, 1] - beta * x[:, 2]], axis=-1)

    def jac_batch(x):
        j = np.zeros((x.shape[0], 3, 3))
        j[:, 0, 0], j[:, 0, 1] = -sigma, sigma
        j[:, 1, 0], j[:, 1, 1], j[:, 1, 2] = rho - x[:, 2], -1.0, -x[:, 0]
        j[:, 2, 0], j[:, 2, 1], j[:, 2, 2] = x[:, 1], x[:, 0], -beta
        return j

    return _benettin(f_batch, jac_batch, starts, dt, t_max, float(transient), renorm_every)


def lorenz_lyapunov_max(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                        **kwargs) -> float:
    """Largest Lyapunov exponent of the Lorenz-63 ODE, per Lorenz time unit, computed numerically.

    The QR (Benettin) method of :func:`lorenz_lyapunov_spectrum`; about 0.906 for the classic
    parameters (reference value :data:`LORENZ63_LYAPUNOV_MAX` = 0.9056).

    Parameters
    ----------
    sigma, rho, beta : float
        Lorenz-63 parameters (default: 10, 28, 8/3).
    **kwargs
        Passed to :func:`lorenz_lyapunov_spectrum` (``t_max``, ``n_trajectories``, ``dt``,
        ``transient``, ``renorm_every``, ``seed``).

    Returns
    -------
    float
        The largest exponent per Lorenz time unit; multiply by the number of Lorenz time units
        per second to get 1/s.

    Examples
    --------
    >>> from nwb_dsr.datasets import lorenz_lyapunov_max
    >>> lam = lorenz_lyapunov_max(t_max=10.0, n_trajectories=32)
    >>> bool(abs(lam - 0.906) < 0.05)
    True
    """
    return float(lorenz_lyapunov_spectrum(sigma, rho, beta, **kwargs)[0])
