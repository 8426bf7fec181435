"""Poisson populations (and LFP mixtures) driven by a chaotic latent, with their ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicHermiteSpline

from .systems import (_CLASSIC_LORENZ, LORENZ63_LYAPUNOV_MAX, _check_count, _check_positive,
                      _integrate, _lorenz_rhs, lorenz_lyapunov_max)

__all__ = ["LorenzPopulation", "make_lorenz_population", "make_lorenz_counts", "SPIKE_MODEL"]

#: How spikes are drawn from the latent (stored with the ground truth).
SPIKE_MODEL = ("per-bin Poisson counts ~ Poisson(exp(C x + d)) with spike times uniform "
               "within each bin (piecewise-constant inhomogeneous Poisson process)")

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
                      spike_model=SPIKE_MODEL, n_lfp_channels=n_lfp_channels,
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

