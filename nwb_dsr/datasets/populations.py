"""Poisson populations (and LFP mixtures) driven by a chaotic latent, with their ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicHermiteSpline

from .systems import (ODESystem, _check_count, _check_positive, _integrate, get_system,
                      lyapunov_max)

__all__ = ["Population", "LorenzPopulation", "make_population", "make_lorenz_population",
           "make_lorenz_counts", "system_lyapunov_max", "SPIKE_MODEL"]

#: How spikes are drawn from the latent (stored with the ground truth).
SPIKE_MODEL = ("per-bin Poisson counts ~ Poisson(exp(C x + d)) with spike times uniform "
               "within each bin (piecewise-constant inhomogeneous Poisson process)")

@dataclass
class Population:
    """A chaotic latent and the Poisson population (and optional LFP) it drives.

    Either one continuous recording or a set of trials: in the second case the arrays below
    hold the trials' bins one after the other (``n_bins`` in all), :meth:`segments` splits them
    per trial, and ``trial_starts`` / ``trial_stops`` place the trials on one session clock.

    Attributes
    ----------
    latent : ndarray of shape (n_bins, dim)
        The system's state at the bin centres, z-scored per dimension (over all bins).
    times : ndarray of shape (n_bins,)
        Bin centres in seconds on the session clock.
    bin_size : float
        Bin width in seconds.
    C : ndarray of shape (n_units, dim)
        Loadings of the log expected count on the latent.
    d : ndarray of shape (n_units,)
        Offsets: ``log E[count] = C @ latent + d`` per bin.
    rates : ndarray of shape (n_bins, n_units)
        True firing rates in Hz, ``exp(latent @ C.T + d) / bin_size``.
    counts : ndarray of shape (n_bins, n_units)
        Spike counts per bin (int64), ``Poisson(rates * bin_size)``.
    spike_times : list of ndarray
        Sorted spike times in seconds on the session clock, one array per unit; binned on the
        grid they give ``counts`` exactly. Empty arrays when generated with
        ``spike_times=False``.
    lyapunov_max : float
        Largest Lyapunov exponent of the latent in 1/s (also :attr:`lambda_max`).
    spike_time_resolution : float
        Clock period of the spike times in seconds.
    parameters : dict
        Everything needed to regenerate the recording (system, its parameters, time scale,
        seed, ...); written as the ``true_parameters`` table of the NWB file.
    latent_mean, latent_std : ndarray of shape (dim,)
        Mean and standard deviation used to z-score the state.
    lfp : ndarray of shape (n_samples, n_lfp_channels) or None
        LFP-like signal in volts (already quantised to multiples of ``lfp_conversion``).
    lfp_rate : float or None
        LFP sampling rate in Hz; sample ``k`` is at ``k / lfp_rate`` seconds.
    lfp_mixing : ndarray of shape (n_lfp_channels, dim) or None
        Mixing of the z-scored latent into the LFP, in volts per latent unit.
    lfp_conversion : float or None
        Volts per integer step of the stored LFP.
    system : str
        Name of the latent system (see :data:`~nwb_dsr.datasets.SYSTEMS`).
    trial_starts, trial_stops : ndarray of shape (n_trials,) or None
        Trial edges in seconds on the session clock (None for a continuous recording).
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
    system: str = "lorenz63"
    trial_starts: np.ndarray | None = None
    trial_stops: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        """Number of units."""
        return int(self.C.shape[0])

    @property
    def n_bins(self) -> int:
        """Number of bins (over all trials)."""
        return int(self.latent.shape[0])

    @property
    def dim(self) -> int:
        """Dimension of the latent."""
        return int(self.latent.shape[1])

    @property
    def n_trials(self) -> int | None:
        """Number of trials, or None for a continuous recording."""
        return None if self.trial_starts is None else int(len(self.trial_starts))

    @property
    def trials(self) -> np.ndarray | None:
        """Trial (start, stop) times in seconds, shape (n_trials, 2); None if continuous."""
        if self.trial_starts is None:
            return None
        return np.stack([self.trial_starts, self.trial_stops], axis=1)

    @property
    def duration(self) -> float:
        """Session length in seconds (up to the end of the last trial)."""
        if self.trial_stops is not None:
            return float(self.trial_stops[-1])
        return self.n_bins * self.bin_size

    @property
    def lambda_max(self) -> float:
        """Largest Lyapunov exponent of the latent in 1/s (same as ``lyapunov_max``)."""
        return float(self.lyapunov_max)

    @property
    def predictability_time(self) -> float:
        """ln 2 / lambda_max in seconds (divide by ``bin_size`` for bins)."""
        return float(np.log(2.0) / self.lyapunov_max) if self.lyapunov_max > 0 else float("inf")

    def segments(self, what: str = "counts") -> list:
        """The recording split into trials (one element for a continuous recording).

        Parameters
        ----------
        what : {"counts", "latent", "rates", "times"}, default "counts"
            Which per-bin array to split.

        Returns
        -------
        list of ndarray
            One array per trial, shapes (n_bins_k, n_units), (n_bins_k, dim) or (n_bins_k,).

        Raises
        ------
        ValueError
            If ``what`` is not one of the per-bin arrays.
        """
        if what not in ("counts", "latent", "rates", "times"):
            raise ValueError(f"what must be 'counts', 'latent', 'rates' or 'times'; got "
                             f"{what!r}.")
        array = getattr(self, what)
        if self.trial_starts is None:
            return [array]
        lengths = np.round((self.trial_stops - self.trial_starts) / self.bin_size).astype(int)
        return np.split(array, np.cumsum(lengths)[:-1])

    def observations(self):
        """The spike counts as :class:`~nwb_dsr.Observations`, one segment per trial.

        Returns
        -------
        Observations
            ``kind="counts"``, the population's ``bin_size``, each segment's start time on the
            session clock, unit ids ``0 .. n_units - 1``.
        """
        from ..observations import Observations

        starts = ([0.0] if self.trial_starts is None
                  else [float(t) for t in self.trial_starts])
        return Observations(self.segments("counts"), kind="counts", bin_size=self.bin_size,
                            start_times=starts, ids=list(range(self.n_units)),
                            provenance={"source": "nwb_dsr.datasets.make_population",
                                        "system": self.system,
                                        "seed": self.parameters.get("seed")})


#: The former name of :class:`Population` (a Lorenz-63 population is one with
#: ``system="lorenz63"``).
LorenzPopulation = Population


def _as_seed(seed) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}.")
    return int(seed)


def _check_range(value, name: str, unit: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers in {unit}; got "
                         f"{value!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
        raise ValueError(f"{name} must be a pair (low, high) with 0 <= low <= high, in {unit}; "
                         f"got {value!r}.")
    return lo, hi


def system_lyapunov_max(system, params=None) -> tuple[float, str]:
    """Largest Lyapunov exponent per system time unit used for a population, and its source.

    The literature value when the parameters are the defaults and the system has one
    (``"reference"``), otherwise the numerical QR estimate of
    :func:`~nwb_dsr.datasets.lyapunov_max` with the system's defaults (``"numerical"``, cached).
    """
    system = get_system(system)
    if system.lyapunov_reference is not None and system.is_default(params):
        return float(system.lyapunov_reference), "reference"
    return lyapunov_max(system, params), "numerical"


def make_population(system: str | ODESystem = "lorenz63", *, n_units: int = 60,
                    mean_rate: float = 15.0, bin_size: float = 0.01, duration: float = 600.0,
                    n_trials: int | None = None, trial_duration: float | None = None,
                    inter_trial_interval=(0.5, 1.5), trial_separation=(3.0, 6.0),
                    time_scale: float | None = None, params=None, modulation: float = 1.0,
                    rate_spread: float = 0.5, n_lfp_channels: int = 0,
                    lfp_rate: float = 250.0, lfp_amplitude: float = 100e-6,
                    lfp_noise: float = 10e-6, lfp_conversion: float = 1e-6,
                    spike_times: bool = True, spike_sampling_rate: float = 32768.0,
                    seed: int | None = 0) -> Population:
    """Simulate a Poisson population driven by a chaotic ODE latent, with known ground truth.

    The state x(t) of ``system`` (integrated with LSODA after a discarded transient, z-scored
    per dimension) is sampled at the bin centres, with ``time_scale`` system time units per
    second. Unit ``i`` has expected count ``exp(C_i . x_k + d_i)`` in bin ``k``; counts are
    Poisson, spike times uniform within the bin on a ``spike_sampling_rate`` clock. Loadings
    ``C_i`` point in a random direction with norm ``modulation * U(0.5, 1)``; offsets ``d_i``
    are set so that unit ``i`` fires on average at a rate drawn log-normally around
    ``mean_rate`` (log-sd ``rate_spread``).

    With ``n_trials`` the recording is a set of short trials instead of one stretch: trial
    ``j`` is a segment of ``trial_duration`` seconds of one long trajectory, and consecutive
    trials are ``trial_separation`` Lyapunov times (1 / lambda_max, drawn uniformly) apart
    along it, so that each starts at an effectively independent point of the attractor. On
    the session clock the trials follow each other with inter-trial intervals drawn uniformly
    from ``inter_trial_interval`` seconds (rounded to whole bins); no spikes fall between
    trials.

    Parameters
    ----------
    system : str or ODESystem, default "lorenz63"
        The latent system, a name of :data:`~nwb_dsr.datasets.SYSTEMS`.
    n_units : int, default 60
        Number of units.
    mean_rate : float, default 15.0
        Population mean firing rate in Hz.
    bin_size : float, default 0.01
        Bin width in seconds.
    duration : float, default 600.0
        Recording length in seconds (rounded down to whole bins); ignored with ``n_trials``.
    n_trials : int, optional
        Number of trials; needs ``trial_duration``. Default: one continuous recording.
    trial_duration : float, optional
        Length of each trial in seconds (rounded down to whole bins, at least two).
    inter_trial_interval : (float, float), default (0.5, 1.5)
        Range of the gaps between trials on the session clock, in seconds.
    trial_separation : (float, float), default (3.0, 6.0)
        Range of the latent's run between the end of a trial and the start of the next, in
        Lyapunov times 1 / lambda_max (a perturbation grows by e^3 to e^6 over it).
    time_scale : float, optional
        System time units per second of recording (default: the system's ``time_scale``,
        which puts the predictability time ln 2 / lambda_max between about 0.7 and 1 s).
    params : mapping of str to float, optional
        System parameters that differ from its defaults. With the defaults lambda_max is the
        literature value where the system has one; otherwise it is computed numerically
        (:func:`~nwb_dsr.datasets.lyapunov_max`).
    modulation : float, default 1.0
        Scale of the loadings (the standard deviation of the log rate is about 0.5-1 times
        this).
    rate_spread : float, default 0.5
        Log-standard deviation of the per-unit mean rates.
    n_lfp_channels : int, default 0
        Channels of an LFP-like noisy linear mixture of the latent (continuous recordings
        only); 0 for none.
    lfp_rate, lfp_amplitude, lfp_noise, lfp_conversion : float
        LFP sampling rate (Hz), mixing scale (volts per latent standard deviation), white-noise
        standard deviation (volts) and quantisation step (volts; stored as int16).
    spike_times : bool, default True
        Whether to draw spike times (set False for counts only, faster).
    spike_sampling_rate : float, default 32768.0
        Clock of the spike times in Hz: each spike lies at a sample centre
        ``(m + 0.5) / spike_sampling_rate`` drawn uniformly among those inside its bin.
    seed : int or None, default 0
        Seed of every random draw (initial condition, loadings, spikes, LFP and trial layout
        use independent streams spawned from it). None draws a fresh seed, recorded in
        ``parameters["seed"]``.

    Returns
    -------
    Population
        Latent, loadings, offsets, rates, counts, spike times, lambda_max in 1/s, parameters,
        trials and the LFP.

    Raises
    ------
    ValueError
        If an argument is out of range, the system is unknown, the latent is constant, or an
        LFP is asked for with trials.

    Examples
    --------
    >>> from nwb_dsr.datasets import make_population
    >>> pop = make_population("roessler", n_units=5, n_trials=4, trial_duration=2.0, seed=1)
    >>> pop.n_trials, [c.shape for c in pop.segments()][:2], pop.latent.shape
    (4, [(200, 5), (200, 5)], (800, 3))
    >>> round(pop.lambda_max, 3), round(pop.predictability_time, 3)
    (0.714, 0.971)
    >>> pop.observations().n_segments
    4
    """
    system = get_system(system)
    p = system.values(params)
    n_units = _check_count(n_units, "n_units")
    bin_size = _check_positive(bin_size, "bin_size")
    time_scale = _check_positive(system.time_scale if time_scale is None else time_scale,
                                 "time_scale")
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
    trials = n_trials is not None or trial_duration is not None
    if trials:
        if n_trials is None or trial_duration is None:
            raise ValueError("n_trials and trial_duration go together: give both for a "
                             "recording made of trials, or neither for a continuous one.")
        n_trials = _check_count(n_trials, "n_trials")
        trial_duration = _check_positive(trial_duration, "trial_duration")
        n_trial_bins = int(np.floor(trial_duration / bin_size + 1e-9))
        if n_trial_bins < 2:
            raise ValueError(f"trial_duration ({trial_duration} s) must cover at least two bins "
                             f"of bin_size {bin_size} s.")
        iti = _check_range(inter_trial_interval, "inter_trial_interval", "seconds")
        separation = _check_range(trial_separation, "trial_separation", "Lyapunov times")
        if n_lfp_channels:
            raise ValueError("An LFP is only simulated for continuous recordings; pass "
                             "n_lfp_channels=0 with n_trials.")
        n_bins = n_trials * n_trial_bins
    else:
        duration = _check_positive(duration, "duration")
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
    lam_unit, lam_source = system_lyapunov_max(system, params)
    f, jac = system.functions(params)
    x0 = rng_x0.uniform(system.x0_low, system.x0_high)

    if trials:
        # trial layout: session-clock starts in whole bins, latent starts along one trajectory
        rng_trials = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(6,)))
        gaps = np.round(rng_trials.uniform(*iti, size=n_trials - 1) / bin_size).astype(np.int64)
        first_bin = np.concatenate([[0], np.cumsum(n_trial_bins + gaps)]).astype(np.int64)
        if lam_unit <= 0:
            raise ValueError(f"{system.name} is not chaotic at these parameters (lambda_max "
                             f"{lam_unit:.3g} <= 0); trials need a positive exponent.")
        run = rng_trials.uniform(*separation, size=n_trials - 1) / lam_unit
        span = n_trial_bins * bin_size * time_scale
        latent_start = np.concatenate([[0.0], np.cumsum(span + run)])
        grid = (latent_start[:, None]
                + (np.arange(n_trial_bins) + 0.5) * bin_size * time_scale).ravel()
        raw = _integrate(f, jac, x0, grid, float(system.transient), "LSODA", 1e-9, 1e-9)
        global_bin = (first_bin[:, None] + np.arange(n_trial_bins)).ravel()
        trial_starts = first_bin * bin_size
        trial_stops = (first_bin + n_trial_bins) * bin_size
    else:
        # latent at the bin centres, integrated on that grid only (plus one centre before and
        # after) so that it does not depend on the LFP settings: in a chaotic system any change
        # of the integrator's steps grows into a different trajectory
        grid = (np.arange(-1, n_bins + 1) + 0.5) * bin_size * time_scale
        states = _integrate(f, jac, x0, grid, float(system.transient), "LSODA", 1e-11, 1e-11)
        raw = states[1:-1]
        global_bin = np.arange(n_bins)
        trial_starts = trial_stops = None
    times = bin_size / 2 + global_bin * bin_size
    mu, sd = raw.mean(axis=0), raw.std(axis=0)
    if np.any(sd <= 1e-8 * np.maximum(1.0, np.abs(mu))):
        raise ValueError(f"The {system.name} latent is constant for these parameters (it "
                         "settled on a fixed point); choose chaotic parameters such as the "
                         f"defaults {dict(system.parameters)}.")
    latent = (raw - mu) / sd

    # loadings and offsets
    dim = system.dim
    direction = rng_c.normal(size=(n_units, dim))
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
    # clock samples m whose centres (m + 0.5) / rate lie inside (global) bin k: first(k) up to
    # first(k + 1) - 1 (the 1e-6-sample margin keeps a centre off a bin edge)
    def first(k):
        return np.ceil(k * bin_size * spike_sampling_rate - 0.5 + 1e-6).astype(np.int64)

    lo, hi = first(global_bin), first(global_bin + 1)
    trains = []
    for i in range(n_units):
        if not spike_times:
            trains.append(np.empty(0))
            continue
        rows = np.repeat(np.arange(n_bins), counts[:, i])
        sample = lo[rows] + rng_spk.integers(0, hi[rows] - lo[rows])
        trains.append(np.sort((sample + 0.5) / spike_sampling_rate))

    # LFP: noisy linear mixture of the latent, quantised to lfp_conversion
    lfp = mixing = None
    if n_lfp_channels:
        mixing = rng_lfp.normal(size=(n_lfp_channels, dim)) * (lfp_amplitude / np.sqrt(dim))
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

    lam = lam_unit * time_scale
    parameters = dict(system=system.name, **dict(zip(system.parameters, p)),
                      time_scale=time_scale, lyapunov_max_per_s=lam,
                      lyapunov_max_per_time_unit=float(lam_unit), bin_size=bin_size, seed=seed,
                      n_units=n_units, duration=float(trial_stops[-1]) if trials
                      else n_bins * bin_size, mean_rate=mean_rate,
                      modulation=float(modulation), rate_spread=float(rate_spread),
                      spike_model=SPIKE_MODEL, n_lfp_channels=n_lfp_channels,
                      lfp_rate=float(lfp_rate) if n_lfp_channels else 0.0,
                      lfp_noise=float(lfp_noise) if n_lfp_channels else 0.0)
    parameters["lyapunov_max_source"] = lam_source
    if trials:
        parameters.update(n_trials=n_trials, trial_duration=n_trial_bins * bin_size,
                          inter_trial_interval_min=iti[0], inter_trial_interval_max=iti[1],
                          trial_separation_min=separation[0], trial_separation_max=separation[1])
    return Population(latent=latent, times=times, bin_size=bin_size, C=C, d=d, rates=rates,
                      counts=counts, spike_times=trains, lyapunov_max=lam,
                      spike_time_resolution=1.0 / spike_sampling_rate,
                      parameters=parameters, latent_mean=mu, latent_std=sd, lfp=lfp,
                      lfp_rate=float(lfp_rate) if n_lfp_channels else None,
                      lfp_mixing=mixing,
                      lfp_conversion=float(lfp_conversion) if n_lfp_channels else None,
                      system=system.name, trial_starts=trial_starts, trial_stops=trial_stops)


def make_lorenz_population(n_units: int = 60, duration: float = 600.0, bin_size: float = 0.01,
                           time_scale: float = 1.0, mean_rate: float = 15.0,
                           modulation: float = 1.0, rate_spread: float = 0.5,
                           sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                           n_lfp_channels: int = 16, lfp_rate: float = 250.0,
                           lfp_amplitude: float = 100e-6, lfp_noise: float = 10e-6,
                           lfp_conversion: float = 1e-6, spike_times: bool = True,
                           spike_sampling_rate: float = 32768.0,
                           seed: int | None = 0) -> Population:
    """Simulate a Poisson population driven by a Lorenz-63 latent, with known ground truth.

    :func:`make_population` with ``system="lorenz63"`` (same draws for the same seed), with
    the Lorenz parameters as arguments and an LFP by default.

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
    Population
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
    return make_population("lorenz63", n_units=n_units, mean_rate=mean_rate, bin_size=bin_size,
                           duration=duration, time_scale=time_scale,
                           params=dict(sigma=sigma, rho=rho, beta=beta), modulation=modulation,
                           rate_spread=rate_spread, n_lfp_channels=n_lfp_channels,
                           lfp_rate=lfp_rate, lfp_amplitude=lfp_amplitude, lfp_noise=lfp_noise,
                           lfp_conversion=lfp_conversion, spike_times=spike_times,
                           spike_sampling_rate=spike_sampling_rate, seed=seed)


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

