"""Analysis of fitted dynamics: metrics, Lyapunov spectra, evaluation, plots."""
from ..metrics import d_h, d_stsp, power_spectrum_distance, state_space_divergence
from .evaluate import co_bps, ensemble_summary, evaluate, poisson_loglik, prediction_error
from .lyapunov import (at_rest_from_collapse, dynamics_class, embedding_delay,
                       embedding_dimension,
                       lyapunov_max_data, lyapunov_spectrum, predictability_time,
                       signal_timescale, spectral_peak, zero_exponent_band)
from ..collapse import CollapseWarning, describe_collapse, detect_collapse
from .plots import (plot_attractor, plot_loss, plot_lyapunov, plot_raster, plot_spectra,
                    plot_tau_sweep)
from .trajectories import Trajectories, trajectories
