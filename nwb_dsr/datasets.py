"""Synthetic recordings with known ground truth, written as real NWB files.

A Lorenz-63 latent drives a Poisson population (and, optionally, an LFP-like linear mixture);
everything needed to judge a reconstruction — the latent, the loadings, the offsets, the largest
Lyapunov exponent in 1/s — is kept next to the data, in memory (:class:`LorenzPopulation`) and in
the NWB file (processing module ``ground_truth`` plus per-unit columns of the Units table).

Time conventions
----------------
The recording is binned with ``bin_size`` seconds; bin ``k`` covers
``[k * bin_size, (k + 1) * bin_size)`` and the latent is sampled at its centre
``bin_size / 2 + k * bin_size``. ``time_scale`` is the number of Lorenz time units per second
of recording, so a recording second sees ``time_scale`` Lorenz time units and the largest
Lyapunov exponent in 1/s is ``lambda_lorenz * time_scale`` (0.9056 /s with the defaults).

Spike model
-----------
Counts are drawn per bin, ``n_{k,i} ~ Poisson(exp(C_i . x_k + d_i))`` (so ``exp(C x + d)`` is
the expected count per bin and ``rates = exp(C x + d) / bin_size`` in Hz); each spike time is
then placed uniformly at random inside its bin, on the sample grid of a ``spike_sampling_rate``
clock (32768 Hz by default; times are sample centres ``(m + 0.5) / rate``, so none lies on a
bin edge). This is an inhomogeneous Poisson process whose intensity is constant within each bin
(up to the clock quantisation), and binning the spike times on the same grid gives back the
counts exactly.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy.integrate import odeint, solve_ivp
from scipy.interpolate import CubicHermiteSpline

__all__ = [
    "LORENZ63_LYAPUNOV_MAX",
    "LorenzPopulation",
    "lorenz63",
    "roessler",
    "lorenz_lyapunov_max",
    "lorenz_lyapunov_spectrum",
    "make_lorenz_population",
    "make_lorenz_counts",
    "write_lorenz_nwb",
    "load_ground_truth",
]

#: Largest Lyapunov exponent of Lorenz-63 at (sigma, rho, beta) = (10, 28, 8/3), per Lorenz time
#: unit (Sprott, *Chaos and Time-Series Analysis*, 2003: 0.9056, 0, -14.5723).
LORENZ63_LYAPUNOV_MAX = 0.9056

_CLASSIC_LORENZ = (10.0, 28.0, 8.0 / 3.0)
_LOCATION = "Isocortex"   # nominal Allen CCF term (nwbinspector asks for one for mouse data)
_SPIKE_MODEL = ("per-bin Poisson counts ~ Poisson(exp(C x + d)) with spike times uniform "
                "within each bin (piecewise-constant inhomogeneous Poisson process)")


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
    n_steps = _check_count(n_steps, "n_steps")
    dt = _check_positive(dt, "dt")
    if transient < 0:
        raise ValueError(f"transient must be >= 0 (Lorenz time units); got {transient!r}.")
    rng = np.random.default_rng(seed)
    x0 = _initial_state(x0, [-15.0, -20.0, 5.0], [15.0, 20.0, 40.0], rng)
    f, jac = _lorenz_rhs(float(sigma), float(rho), float(beta))
    return _integrate(f, jac, x0, np.arange(n_steps) * dt, float(transient), method, rtol, atol)


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
    seed : int or numpy.random.Generator, optional
        Random state for the initial condition (ignored when ``x0`` is given).
    method : str, default "LSODA"
        As in :func:`lorenz63`.
    rtol, atol : float, default 1e-11
        Integration tolerances.

    Returns
    -------
    ndarray of shape (n_steps, 3)
        The state (x, y, z) at times ``0, dt, ..., (n_steps - 1) dt`` after the transient.

    Examples
    --------
    >>> from nwb_dsr.datasets import roessler
    >>> x = roessler(400, seed=0)
    >>> x.shape, bool(abs(x[:, :2]).max() < 15 and x[:, 2].min() >= 0)
    ((400, 3), True)
    """
    n_steps = _check_count(n_steps, "n_steps")
    dt = _check_positive(dt, "dt")
    if transient < 0:
        raise ValueError(f"transient must be >= 0 (time units); got {transient!r}.")
    rng = np.random.default_rng(seed)
    x0 = _initial_state(x0, [-5.0, -5.0, 0.0], [5.0, 5.0, 1.0], rng)
    f, jac = _roessler_rhs(float(a), float(b), float(c))
    return _integrate(f, jac, x0, np.arange(n_steps) * dt, float(transient), method, rtol, atol)


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


# --------------------------------------------------------------------------------------------
# the Lorenz-driven population
# --------------------------------------------------------------------------------------------

@dataclass
class LorenzPopulation:
    """A Lorenz-63 latent and the Poisson population (and optional LFP) it drives.

    Attributes
    ----------
    latent : ndarray of shape (n_bins, 3)
        The Lorenz state at the bin centres, z-scored per dimension.
    times : ndarray of shape (n_bins,)
        Bin centres in seconds, ``bin_size / 2 + k * bin_size``.
    bin_size : float
        Bin width in seconds.
    C : ndarray of shape (n_units, 3)
        Loadings of the log expected count on the latent.
    d : ndarray of shape (n_units,)
        Offsets: ``log E[count] = C @ latent + d`` per bin.
    rates : ndarray of shape (n_bins, n_units)
        True firing rates in Hz, ``exp(latent @ C.T + d) / bin_size``.
    counts : ndarray of shape (n_bins, n_units)
        Spike counts per bin (int64), ``Poisson(rates * bin_size)``.
    spike_times : list of ndarray
        Sorted spike times in seconds, one array per unit; binned on the grid they give
        ``counts`` exactly. Empty arrays when generated with ``spike_times=False``.
    spike_time_resolution : float
        Spacing of the clock the spike times are quantised to, in seconds.
    lyapunov_max : float
        Largest Lyapunov exponent of the latent in 1/s.
    parameters : dict
        System name, sigma, rho, beta, time_scale, lyapunov_max_per_s,
        lyapunov_max_per_time_unit, bin_size, seed, n_units, duration, mean_rate, modulation,
        spike_model, and the LFP settings.
    latent_mean, latent_std : ndarray of shape (3,)
        Mean and standard deviation used to z-score the Lorenz state.
    lfp : ndarray of shape (n_samples, n_lfp_channels) or None
        LFP-like signal in volts (already quantised to multiples of ``lfp_conversion``).
    lfp_rate : float or None
        LFP sampling rate in Hz; sample ``k`` is at ``k / lfp_rate`` seconds.
    lfp_mixing : ndarray of shape (n_lfp_channels, 3) or None
        Mixing of the z-scored latent into the LFP, in volts per latent unit.
    lfp_conversion : float or None
        Volts per integer step of the stored LFP.
    """

    latent: np.ndarray
    times: np.ndarray
    bin_size: float
    C: np.ndarray
    d: np.ndarray
    rates: np.ndarray
    counts: np.ndarray
    spike_times: list
    lyapunov_max: float
    spike_time_resolution: float = 0.0
    parameters: dict = field(default_factory=dict)
    latent_mean: np.ndarray | None = None
    latent_std: np.ndarray | None = None
    lfp: np.ndarray | None = None
    lfp_rate: float | None = None
    lfp_mixing: np.ndarray | None = None
    lfp_conversion: float | None = None

    @property
    def n_units(self) -> int:
        """Number of units."""
        return int(self.C.shape[0])

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.latent.shape[0])

    @property
    def duration(self) -> float:
        """Recording length in seconds."""
        return self.n_bins * self.bin_size

    @property
    def predictability_time(self) -> float:
        """ln 2 / lambda_max in seconds (divide by ``bin_size`` for bins)."""
        return float(np.log(2.0) / self.lyapunov_max) if self.lyapunov_max > 0 else float("inf")


def _as_seed(seed) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}.")
    return int(seed)


def make_lorenz_population(n_units: int = 60, duration: float = 600.0, bin_size: float = 0.01,
                           time_scale: float = 1.0, mean_rate: float = 15.0,
                           modulation: float = 1.0, rate_spread: float = 0.5,
                           sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                           n_lfp_channels: int = 16, lfp_rate: float = 250.0,
                           lfp_amplitude: float = 100e-6, lfp_noise: float = 10e-6,
                           lfp_conversion: float = 1e-6, spike_times: bool = True,
                           spike_sampling_rate: float = 32768.0,
                           seed: int | None = 0) -> LorenzPopulation:
    """Simulate a Poisson population driven by a Lorenz-63 latent, with known ground truth.

    The Lorenz state x(t) (integrated with :func:`lorenz63`'s integrator, transient discarded,
    z-scored per dimension) is sampled at the bin centres. Unit ``i`` has expected count
    ``exp(C_i . x_k + d_i)`` in bin ``k``; counts are Poisson, spike times uniform within the
    bin. Loadings ``C_i`` point in a random direction with norm ``modulation * U(0.5, 1)``;
    offsets ``d_i`` are set so that unit ``i`` fires on average at a rate drawn log-normally
    around ``mean_rate`` (log-sd ``rate_spread``).

    Parameters
    ----------
    n_units : int, default 60
        Number of units.
    duration : float, default 600.0
        Recording length in seconds (rounded down to whole bins).
    bin_size : float, default 0.01
        Bin width in seconds.
    time_scale : float, default 1.0
        Lorenz time units per second of recording. With 1.0 one loop of the attractor takes
        about 0.5-1 s, lambda_max = 0.906 /s and the predictability time ln 2 / lambda_max is
        0.77 s (77 bins of 10 ms).
    mean_rate : float, default 15.0
        Population mean firing rate in Hz (0.15 spikes per 10-ms bin).
    modulation : float, default 1.0
        Scale of the loadings (the standard deviation of the log rate is about 0.5-1 times
        this).
    rate_spread : float, default 0.5
        Log-standard deviation of the per-unit mean rates.
    sigma, rho, beta : float
        Lorenz-63 parameters. For the classic (10, 28, 8/3) lambda_max is the reference
        0.9056 per time unit; otherwise it is computed with :func:`lorenz_lyapunov_max`.
    n_lfp_channels : int, default 16
        Channels of the LFP-like signal; 0 for none.
    lfp_rate : float, default 250.0
        LFP sampling rate in Hz.
    lfp_amplitude : float, default 100e-6
        Scale of the mixing weights, in volts per latent standard deviation.
    lfp_noise : float, default 10e-6
        Standard deviation of the additive white noise, in volts.
    lfp_conversion : float, default 1e-6
        Volts per integer step; the LFP is quantised to this resolution (it is stored as int16).
    spike_times : bool, default True
        Whether to draw spike times (set False for counts only, faster).
    spike_sampling_rate : float, default 32768.0
        Clock of the spike times in Hz: each spike lies at a sample centre
        ``(m + 0.5) / spike_sampling_rate`` drawn uniformly among those inside its bin. A
        power of two makes the times exact binary fractions, which compress well.
    seed : int or None, default 0
        Seed of every random draw (initial condition, loadings, spikes and LFP use independent
        streams spawned from it). None draws a fresh seed, recorded in ``parameters["seed"]``.

    Returns
    -------
    LorenzPopulation
        Latent, loadings, offsets, rates, counts, spike times, lambda_max in 1/s, parameters
        and the LFP.

    Raises
    ------
    ValueError
        If an argument is out of range, or the duration is shorter than two bins.

    Examples
    --------
    >>> from nwb_dsr.datasets import make_lorenz_population
    >>> pop = make_lorenz_population(n_units=5, duration=10.0, n_lfp_channels=2, seed=1)
    >>> pop.counts.shape, pop.latent.shape, pop.lfp.shape
    ((1000, 5), (1000, 3), (2500, 2))
    >>> round(pop.lyapunov_max, 4), round(pop.predictability_time, 3)
    (0.9056, 0.765)
    """
    n_units = _check_count(n_units, "n_units")
    duration = _check_positive(duration, "duration")
    bin_size = _check_positive(bin_size, "bin_size")
    time_scale = _check_positive(time_scale, "time_scale")
    mean_rate = _check_positive(mean_rate, "mean_rate")
    if not np.isfinite(modulation) or modulation < 0:
        raise ValueError(f"modulation must be a finite number >= 0; got {modulation!r}.")
    if not np.isfinite(rate_spread) or rate_spread < 0:
        raise ValueError(f"rate_spread must be a finite number >= 0; got {rate_spread!r}.")
    n_lfp_channels = _check_count(n_lfp_channels, "n_lfp_channels", minimum=0)
    spike_sampling_rate = _check_positive(spike_sampling_rate, "spike_sampling_rate")
    if spike_sampling_rate * bin_size < 2:
        raise ValueError(f"spike_sampling_rate ({spike_sampling_rate} Hz) must give at least two "
                         f"clock samples per bin of {bin_size} s; raise it.")
    seed = _as_seed(seed)
    n_bins = int(np.floor(duration / bin_size + 1e-9))
    if n_bins < 2:
        raise ValueError(f"duration ({duration} s) must cover at least two bins of bin_size "
                         f"{bin_size} s.")
    if n_lfp_channels:
        lfp_rate = _check_positive(lfp_rate, "lfp_rate")
        lfp_conversion = _check_positive(lfp_conversion, "lfp_conversion")
        if lfp_amplitude < 0 or lfp_noise < 0:
            raise ValueError("lfp_amplitude and lfp_noise must be >= 0 (volts); got "
                             f"{lfp_amplitude!r} and {lfp_noise!r}.")
    rng_x0, rng_c, rng_spk, rng_lfp = (np.random.default_rng(s)
                                       for s in np.random.SeedSequence(seed).spawn(4))

    # latent at the bin centres, integrated on that grid only (plus one centre before and after)
    # so that it does not depend on the LFP settings: in a chaotic system any change of the
    # integrator's steps grows into a different trajectory
    times = bin_size / 2 + np.arange(n_bins) * bin_size
    grid = (np.arange(-1, n_bins + 1) + 0.5) * bin_size * time_scale
    f, jac = _lorenz_rhs(float(sigma), float(rho), float(beta))
    x0 = rng_x0.uniform([-15.0, -20.0, 5.0], [15.0, 20.0, 40.0])
    states = _integrate(f, jac, x0, grid, 50.0, "LSODA", 1e-11, 1e-11)
    raw = states[1:-1]
    mu, sd = raw.mean(axis=0), raw.std(axis=0)
    if np.any(sd <= 1e-8 * np.maximum(1.0, np.abs(mu))):
        raise ValueError("The Lorenz latent is constant for these parameters (it settled on a "
                         "fixed point); choose chaotic sigma, rho, beta such as 10, 28, 8/3.")
    latent = (raw - mu) / sd

    # loadings and offsets
    direction = rng_c.normal(size=(n_units, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    C = direction * (modulation * rng_c.uniform(0.5, 1.0, size=(n_units, 1)))
    unit_rate = mean_rate * np.exp(rate_spread * rng_c.normal(size=n_units) - rate_spread**2 / 2)
    log_drive = latent @ C.T
    shift = log_drive.max(axis=0)
    d = np.log(unit_rate * bin_size) - shift - np.log(np.mean(np.exp(log_drive - shift), axis=0))
    expected = np.exp(log_drive + d)
    rates = expected / bin_size

    # spikes
    counts = rng_spk.poisson(expected).astype(np.int64)
    # clock samples m whose centres (m + 0.5) / rate lie inside bin k: first_sample[k] up to
    # first_sample[k + 1] - 1 (the 1e-6-sample margin keeps a centre off a bin edge)
    first_sample = np.ceil(np.arange(n_bins + 1) * bin_size * spike_sampling_rate - 0.5 + 1e-6)
    first_sample = first_sample.astype(np.int64)
    trains = []
    for i in range(n_units):
        if not spike_times:
            trains.append(np.empty(0))
            continue
        bins = np.repeat(np.arange(n_bins), counts[:, i])
        sample = first_sample[bins] + rng_spk.integers(
            0, first_sample[bins + 1] - first_sample[bins])
        trains.append(np.sort((sample + 0.5) / spike_sampling_rate))

    # LFP: noisy linear mixture of the latent, quantised to lfp_conversion
    lfp = mixing = None
    if n_lfp_channels:
        mixing = rng_lfp.normal(size=(n_lfp_channels, 3)) * (lfp_amplitude / np.sqrt(3.0))
        # latent at the LFP samples: cubic Hermite interpolation of the integrated states with
        # the exact vector field as derivative (error O(h^4), far below the noise)
        lfp_times = np.arange(int(np.floor(n_bins * bin_size * lfp_rate + 1e-9))) / lfp_rate
        spline = CubicHermiteSpline(grid, states, np.asarray(f(states.T)).T)
        clean = ((spline(lfp_times * time_scale) - mu) / sd) @ mixing.T
        noisy = clean + lfp_noise * rng_lfp.normal(size=clean.shape)
        steps = np.round(noisy / lfp_conversion)
        if np.abs(steps).max() > np.iinfo(np.int16).max:
            raise ValueError("The LFP does not fit int16 at this lfp_conversion; increase "
                             "lfp_conversion or lower lfp_amplitude / lfp_noise.")
        lfp = steps.astype(np.int16).astype(np.float64) * lfp_conversion

    classic = np.allclose([sigma, rho, beta], _CLASSIC_LORENZ, rtol=0, atol=1e-12)
    lam_unit = LORENZ63_LYAPUNOV_MAX if classic else lorenz_lyapunov_max(sigma, rho, beta)
    lam = lam_unit * time_scale
    parameters = dict(system="lorenz63", sigma=float(sigma), rho=float(rho), beta=float(beta),
                      time_scale=time_scale, lyapunov_max_per_s=lam,
                      lyapunov_max_per_time_unit=float(lam_unit), bin_size=bin_size, seed=seed,
                      n_units=n_units, duration=n_bins * bin_size, mean_rate=mean_rate,
                      modulation=float(modulation), rate_spread=float(rate_spread),
                      spike_model=_SPIKE_MODEL, n_lfp_channels=n_lfp_channels,
                      lfp_rate=float(lfp_rate) if n_lfp_channels else 0.0,
                      lfp_noise=float(lfp_noise) if n_lfp_channels else 0.0)
    return LorenzPopulation(latent=latent, times=times, bin_size=bin_size, C=C, d=d, rates=rates,
                            counts=counts, spike_times=trains, lyapunov_max=lam,
                            spike_time_resolution=1.0 / spike_sampling_rate,
                            parameters=parameters, latent_mean=mu, latent_std=sd, lfp=lfp,
                            lfp_rate=float(lfp_rate) if n_lfp_channels else None,
                            lfp_mixing=mixing,
                            lfp_conversion=float(lfp_conversion) if n_lfp_channels else None)


def make_lorenz_counts(n_units: int = 60, duration: float = 600.0, bin_size: float = 0.01,
                       seed: int | None = 0, **kwargs) -> tuple[np.ndarray, np.ndarray, dict]:
    """Spike counts, latent and ground truth as plain arrays, without NWB (tests, benchmarks).

    Same draws as :func:`make_lorenz_population` with the same arguments (so the counts equal
    those behind :func:`write_lorenz_nwb`'s spike times), but no spike times and no LFP unless
    asked for.

    Parameters
    ----------
    n_units : int, default 60
        Number of units.
    duration : float, default 600.0
        Recording length in seconds.
    bin_size : float, default 0.01
        Bin width in seconds.
    seed : int or None, default 0
        Random seed.
    **kwargs
        Other arguments of :func:`make_lorenz_population` (``n_lfp_channels`` defaults to 0
        here).

    Returns
    -------
    counts : ndarray of shape (n_bins, n_units)
        Spike counts per bin (int64).
    latent : ndarray of shape (n_bins, 3)
        The z-scored Lorenz latent at the bin centres.
    truth : dict
        ``C`` (n_units, 3), ``d`` (n_units,), ``rates`` (n_bins, n_units) in Hz, ``times``
        (n_bins,), ``bin_size``, ``lyapunov_max`` (1/s), ``predictability_time`` (s) and
        ``parameters``.

    Examples
    --------
    >>> from nwb_dsr.datasets import make_lorenz_counts
    >>> counts, latent, truth = make_lorenz_counts(n_units=4, duration=5.0, seed=0)
    >>> counts.shape, latent.shape, truth["C"].shape
    ((500, 4), (500, 3), (4, 3))
    """
    kwargs.setdefault("n_lfp_channels", 0)
    kwargs.setdefault("spike_times", False)
    pop = make_lorenz_population(n_units=n_units, duration=duration, bin_size=bin_size,
                                 seed=seed, **kwargs)
    truth = dict(C=pop.C, d=pop.d, rates=pop.rates, times=pop.times, bin_size=pop.bin_size,
                 lyapunov_max=pop.lyapunov_max, predictability_time=pop.predictability_time,
                 parameters=pop.parameters)
    return pop.counts, pop.latent, truth


# --------------------------------------------------------------------------------------------
# NWB
# --------------------------------------------------------------------------------------------

_PARAMETER_DESCRIPTIONS = {
    "system": "name of the latent dynamical system",
    "sigma": "Lorenz-63 parameter sigma",
    "rho": "Lorenz-63 parameter rho",
    "beta": "Lorenz-63 parameter beta",
    "time_scale": "Lorenz time units per second of recording",
    "lyapunov_max_per_s": "largest Lyapunov exponent of the latent, in 1/s",
    "lyapunov_max_per_time_unit": "largest Lyapunov exponent per Lorenz time unit",
    "bin_size": "bin width in seconds; the latent is sampled at the bin centres",
    "seed": "random seed of the simulation (nwb_dsr.datasets.make_lorenz_population)",
    "n_units": "number of simulated units",
    "duration": "recording length in seconds",
    "mean_rate": "target population mean firing rate in Hz",
    "modulation": "scale of the loadings of the log rate on the latent",
    "rate_spread": "log-standard deviation of the per-unit mean rates",
    "spike_model": "how spikes were generated from the rates",
    "n_lfp_channels": "number of LFP channels (0: none)",
    "lfp_rate": "LFP sampling rate in Hz (0: no LFP)",
    "lfp_noise": "standard deviation of the LFP white noise in volts",
}


def write_lorenz_nwb(path, n_units: int = 60, duration: float = 600.0, bin_size: float = 0.01,
                     n_trials: int | None = None, lfp: bool = True, seed: int | None = 0,
                     overwrite: bool = False, trial_gap: float = 0.1,
                     **kwargs) -> Path:
    """Simulate a Lorenz-driven recording and write it as a valid NWB file.

    The file holds subject and session metadata, one device and electrode group, an electrodes
    table (``n_lfp_channels`` electrodes, 16 by default), the Units table (spike times, the
    electrode of each unit, a ``quality`` column with about 10 % ``"mua"``, and the ground
    truth ``true_loading`` (3 per unit), ``true_offset`` and ``true_mean_rate``), optionally a
    trials table and the LFP (processing module ``ecephys``, int16 with ``conversion``, gzip),
    and a processing module ``ground_truth`` with the TimeSeries ``true_latent`` (the z-scored
    Lorenz latent on the bin centres) and the one-row DynamicTable ``true_parameters``. The
    electrodes table also has ``true_lfp_loading`` (the LFP mixing weights in volts).
    Read the truth back with :func:`load_ground_truth`.

    Parameters
    ----------
    path : str or path-like
        File to write (``.nwb``). Its folder must exist.
    n_units : int, default 60
        Number of units.
    duration : float, default 600.0
        Recording length in seconds.
    bin_size : float, default 0.01
        Bin width in seconds of the ground-truth latent and rates.
    n_trials : int, optional
        If given, a trials table of ``n_trials`` equal trials tiling the session, each followed
        by a gap of ``trial_gap`` seconds (none after the last), with a boolean ``correct``
        column (about 80 % True).
    lfp : bool, default True
        Whether to write the LFP-like signal.
    seed : int or None, default 0
        Random seed (None draws one; it is recorded in ``true_parameters``).
    overwrite : bool, default False
        Replace ``path`` if it exists; otherwise an existing file is an error.
    trial_gap : float, default 0.1
        Inter-trial gap in seconds (when ``n_trials`` is given).
    **kwargs
        Other arguments of :func:`make_lorenz_population` (``time_scale``, ``mean_rate``,
        ``modulation``, ``n_lfp_channels``, ``lfp_rate``, ...).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nwb_dsr.datasets import write_lorenz_nwb, load_ground_truth
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_lorenz_nwb(pathlib.Path(tmp) / "lorenz.nwb", n_units=4, duration=5.0,
    ...                             n_trials=2, n_lfp_channels=2)
    ...     truth = load_ground_truth(path)
    >>> truth["latent"].shape, truth["C"].shape, round(truth["lyapunov_max"], 4)
    ((500, 3), (4, 3), 0.9056)
    """
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import DynamicTable, DynamicTableRegion, VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ecephys import LFP, ElectricalSeries
    from pynwb.file import Subject
    from pynwb.misc import Units

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or "
                              "choose another path.")
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; give a file name such as "
                                f"{path / 'lorenz.nwb'}.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder {path.parent} does not exist; create it first.")
    if n_trials is not None:
        n_trials = _check_count(n_trials, "n_trials")
    if not np.isfinite(trial_gap) or trial_gap < 0:
        raise ValueError(f"trial_gap must be a finite number >= 0 (seconds); got {trial_gap!r}.")
    n_lfp_channels = kwargs.pop("n_lfp_channels", 16)
    n_electrodes = max(1, _check_count(n_lfp_channels, "n_lfp_channels", minimum=0))
    pop = make_lorenz_population(n_units=n_units, duration=duration, bin_size=bin_size,
                                 n_lfp_channels=n_lfp_channels if lfp else 0, seed=seed,
                                 **kwargs)
    par = pop.parameters
    if n_trials is not None and trial_gap * (n_trials - 1) >= 0.5 * pop.duration:
        raise ValueError(f"n_trials={n_trials} with trial_gap={trial_gap} s leaves less than "
                         f"half of the {pop.duration} s session in trials; lower either.")
    gz = dict(compression="gzip", compression_opts=4, shuffle=True)

    nwbfile = NWBFile(
        session_description=(
            "Synthetic recording generated by nwb_dsr.datasets.write_lorenz_nwb: a Lorenz-63 "
            f"latent (time scale {par['time_scale']} Lorenz time units per second, largest "
            f"Lyapunov exponent {pop.lyapunov_max:.4f} 1/s) drives {pop.n_units} Poisson units "
            "(log-linear rates) and an LFP-like noisy linear mixture. Ground truth is stored in "
            "the processing module 'ground_truth' and in the Units columns 'true_*'."),
        identifier=str(uuid.uuid4()),
        session_start_time=datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc),
        experimenter=["Simulation, Nwb-Dsr"],
        institution="nwb_dsr (synthetic data)",
        lab="nwb_dsr",
        keywords=["synthetic", "Lorenz-63", "dynamical systems reconstruction"],
        experiment_description=f"Simulated with seed {par['seed']}; {_SPIKE_MODEL}.",
        subject=Subject(subject_id=f"lorenz-{par['seed']}", species="Mus musculus", sex="U",
                        age="P90D", description="Synthetic subject: no animal was recorded; the "
                        "data are simulated from a Lorenz-63 latent."),
    )
    device = nwbfile.create_device(name="simulated_probe",
                                   description="Simulated silicon probe (synthetic data).")
    group = nwbfile.create_electrode_group(name="shank0", description="Simulated shank (the "
                                           "location is nominal: the data are synthetic).",
                                           location=_LOCATION, device=device)
    nwbfile.add_electrode_column(name="true_lfp_loading",
                                 description="Ground truth: weights (volts per latent standard "
                                 "deviation) of the z-scored latent in this channel's LFP; zeros "
                                 "when no LFP was written.")
    mixing = pop.lfp_mixing if pop.lfp_mixing is not None else np.zeros((n_electrodes, 3))
    for e in range(n_electrodes):
        nwbfile.add_electrode(group=group, location=_LOCATION,
                              true_lfp_loading=mixing[e])

    # the Units table is built column-wise from arrays: adding rows one by one turns the
    # spike times into a Python list that hdmf then converts element by element (slow)
    rng_quality = np.random.default_rng(np.random.SeedSequence(par["seed"], spawn_key=(4,)))
    quality = np.where(rng_quality.random(pop.n_units) < 0.1, "mua", "good")
    n = pop.n_units
    units = Units(name="units", description="Simulated units: Poisson spike trains driven by "
                  "the ground-truth Lorenz latent (columns true_*).",
                  resolution=pop.spike_time_resolution, electrode_table=nwbfile.electrodes,
                  id=np.arange(n))
    ends = np.cumsum([len(t) for t in pop.spike_times])
    one_each = np.arange(1, n + 1)
    spikes = VectorData(name="spike_times", description="Spike times in seconds.",
                        data=H5DataIO(np.concatenate(pop.spike_times).astype(np.float64), **gz))
    electrodes = DynamicTableRegion(name="electrodes", description="The electrode each unit "
                                    "was recorded on.", data=np.arange(n) % n_electrodes,
                                    table=nwbfile.electrodes)
    intervals = VectorData(name="obs_intervals", description="Observation intervals (the whole "
                           "session).", data=np.tile([[0.0, pop.duration]], (n, 1)))
    columns = [
        spikes, VectorIndex(name="spike_times_index", data=ends, target=spikes),
        electrodes, VectorIndex(name="electrodes_index", data=one_each, target=electrodes),
        VectorData(name="electrode_group", description="The electrode group of each unit.",
                   data=[group] * n),
        intervals, VectorIndex(name="obs_intervals_index", data=one_each, target=intervals),
        VectorData(name="quality", description="Sorting quality: 'good' (single unit) or 'mua' "
                   "(multi-unit activity); simulated labels.", data=quality.tolist()),
        VectorData(name="true_loading", description="Ground truth: loading C_i (3 values) of "
                   "the unit's log expected count per bin on the z-scored latent; "
                   "E[count in bin k] = exp(C_i . x_k + d_i).", data=pop.C),
        VectorData(name="true_offset", description="Ground truth: offset d_i of the unit's log "
                   "expected count per bin.", data=pop.d),
        VectorData(name="true_mean_rate", description="Ground truth: the unit's mean firing "
                   "rate over the session, in Hz.", data=pop.rates.mean(axis=0)),
    ]
    units = Units(name="units", description="Simulated units: Poisson spike trains driven by "
                  "the ground-truth Lorenz latent (columns true_*).", id=np.arange(n),
                  columns=columns, resolution=pop.spike_time_resolution,
                  electrode_table=nwbfile.electrodes)
    nwbfile.units = units

    if n_trials is not None:
        rng_trials = np.random.default_rng(np.random.SeedSequence(par["seed"], spawn_key=(5,)))
        length = (pop.duration - trial_gap * (n_trials - 1)) / n_trials
        nwbfile.add_trial_column(name="correct", description="Whether the (simulated) trial "
                                 "was correct; random, unrelated to the dynamics.")
        for k in range(n_trials):
            start = k * (length + trial_gap)
            stop = pop.duration if k == n_trials - 1 else start + length
            nwbfile.add_trial(start_time=start, stop_time=stop,
                              correct=bool(rng_trials.random() < 0.8))

    if pop.lfp is not None:
        region = nwbfile.create_electrode_table_region(
            region=list(range(n_electrodes)), description="all simulated LFP channels")
        data = np.round(pop.lfp / pop.lfp_conversion).astype(np.int16)
        # LFP in its module first, so the series' electrode region shares an ancestor with the
        # electrodes table when it is attached (else hdmf warns)
        ecephys = nwbfile.create_processing_module(
            name="ecephys", description="Processed extracellular electrophysiology (LFP).")
        lfp_container = LFP()
        ecephys.add(lfp_container)
        series = ElectricalSeries(
            name="ElectricalSeries", description="LFP-like signal: noisy linear mixture of the "
            "z-scored Lorenz latent (weights in the electrodes column true_lfp_loading) plus "
            "white noise, quantised to int16; multiply by conversion for volts.",
            data=H5DataIO(data, chunks=(min(len(data), 25000), n_electrodes), **gz),
            electrodes=region, rate=float(pop.lfp_rate), starting_time=0.0,
            conversion=float(pop.lfp_conversion), filtering="none (synthetic broadband signal)")
        lfp_container.add_electrical_series(series)

    truth = nwbfile.create_processing_module(
        name="ground_truth", description="Ground truth of the synthetic recording: the latent "
        "dynamical system that generated the spikes and the LFP, and its parameters.")
    truth.add(TimeSeries(
        name="true_latent",
        data=H5DataIO(pop.latent, chunks=(min(pop.n_bins, 20000), 3), **gz),
        unit="a.u.", rate=1.0 / pop.bin_size, starting_time=pop.bin_size / 2,
        description=("Ground-truth latent: the Lorenz-63 state (x, y, z), z-scored per "
                     "dimension, sampled at the bin centres (bin_size / 2 + k * bin_size); "
                     "expected spike count of unit i in bin k = exp(true_loading_i . latent_k + "
                     "true_offset_i)."),
        comments=(f"z-scoring mean {pop.latent_mean.tolist()}, sd {pop.latent_std.tolist()} "
                  "(Lorenz units).")))
    table = DynamicTable(name="true_parameters", description="Parameters of the simulation "
                         "(one row): the latent system, its time scale and largest Lyapunov "
                         "exponent, the binning and the random seed.")
    for key, value in par.items():
        table.add_column(name=key, description=_PARAMETER_DESCRIPTIONS[key])
    table.add_row(**{k: (int(v) if isinstance(v, (int, np.integer)) else v)
                     for k, v in par.items()})
    truth.add(table)

    tmp = path.with_name(f".{path.stem}.partial.nwb")
    try:
        with NWBHDF5IO(str(tmp), mode="w") as io:
            io.write(nwbfile)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_ground_truth(path) -> dict:
    """Read the ground truth back from a file written by :func:`write_lorenz_nwb`.

    Parameters
    ----------
    path : str or path-like
        The NWB file.

    Returns
    -------
    dict
        ``latent`` (n_bins, 3) the z-scored latent; ``times`` (n_bins,) bin centres in s;
        ``C`` (n_units, 3) and ``d`` (n_units,) in Units-table order; ``unit_ids``
        (n_units,); ``lyapunov_max`` (1/s); ``predictability_time`` (s); ``bin_size`` (s);
        ``lfp_mixing`` (n_electrodes, 3) in volts; ``parameters`` (dict, the row of
        ``true_parameters``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    KeyError
        If the file has no ``ground_truth`` processing module (it was not written by
        :func:`write_lorenz_nwb`).

    Examples
    --------
    See :func:`write_lorenz_nwb`.
    """
    from pynwb import NWBHDF5IO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No NWB file at {path}.")
    with NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        if "ground_truth" not in nwbfile.processing:
            raise KeyError(f"{path} has no 'ground_truth' processing module; load_ground_truth "
                           "reads files written by nwb_dsr.datasets.write_lorenz_nwb.")
        module = nwbfile.processing["ground_truth"]
        table = module["true_parameters"]
        parameters: dict[str, Any] = {}
        for name in table.colnames:
            value = table[name][0]
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.generic):
                value = value.item()
            parameters[name] = value
        series = module["true_latent"]
        latent = np.asarray(series.data[:], dtype=float)
        bin_size = float(parameters["bin_size"])
        times = float(series.starting_time) + np.arange(latent.shape[0]) * bin_size
        units = nwbfile.units
        C = np.asarray(units["true_loading"][:], dtype=float)
        d = np.asarray(units["true_offset"][:], dtype=float)
        unit_ids = np.asarray(units.id[:])
        lfp_mixing = np.asarray(nwbfile.electrodes["true_lfp_loading"][:], dtype=float)
    lam = float(parameters["lyapunov_max_per_s"])
    return dict(latent=latent, times=times, C=C, d=d, unit_ids=unit_ids, lyapunov_max=lam,
                predictability_time=float(np.log(2.0) / lam) if lam > 0 else float("inf"),
                bin_size=bin_size, lfp_mixing=lfp_mixing, parameters=parameters)
