"""Analysis of fitted dynamics: metrics, Lyapunov spectra, evaluation, plots."""
from .metrics import d_h, d_stsp, power_spectrum_distance, state_space_divergence
