"""Synthetic recordings with known ground truth, written as real NWB files.

- :mod:`~nwb_dsr.datasets.systems`: chaotic ODEs as data (:class:`ODESystem`, registry
  :data:`SYSTEMS`: Lorenz-63, Rössler, Thomas, Halvorsen, Chen, Sprott B) and their Lyapunov
  spectra;
- :mod:`~nwb_dsr.datasets.populations`: Poisson populations and LFP mixtures they drive;
- :mod:`~nwb_dsr.datasets.nwb`: such recordings written as NWB files, and read back.

The latent of any registered system (Lorenz-63 by default) drives a Poisson population (and,
optionally, an LFP-like linear mixture);
everything needed to judge a reconstruction — the latent, the loadings, the offsets, the largest
Lyapunov exponent in 1/s — is kept next to the data, in memory (:class:`Population`) and in
the NWB file (processing module ``ground_truth`` plus per-unit columns of the Units table).

Time conventions
----------------
The recording is binned with ``bin_size`` seconds; bin ``k`` covers
``[k * bin_size, (k + 1) * bin_size)`` and the latent is sampled at its centre
``bin_size / 2 + k * bin_size``. ``time_scale`` is the number of system time units per second
of recording, so a recording second sees ``time_scale`` system time units and the largest
Lyapunov exponent in 1/s is ``lambda_per_time_unit * time_scale`` (0.9056 /s for Lorenz-63 with
the defaults). A recording made of trials (``make_population(..., n_trials=...)``) has its bins
on one session clock with gaps between trials; each trial's latent starts at an independent
point of the attractor.

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
from .nwb import load_ground_truth, write_lorenz_nwb, write_population_nwb
from .populations import (LorenzPopulation, Population, make_lorenz_counts,
                          make_lorenz_population, make_population, system_lyapunov_max)
from .systems import (LORENZ63_LYAPUNOV_MAX, SYSTEMS, ODESystem, get_system, integrate,
                      lorenz63, lorenz_lyapunov_max, lorenz_lyapunov_spectrum, lyapunov_max,
                      lyapunov_spectrum, roessler)

__all__ = [
    "LORENZ63_LYAPUNOV_MAX",
    "SYSTEMS",
    "ODESystem",
    "get_system",
    "integrate",
    "lyapunov_spectrum",
    "lyapunov_max",
    "Population",
    "make_population",
    "system_lyapunov_max",
    "write_population_nwb",
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
