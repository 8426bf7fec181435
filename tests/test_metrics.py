"""D_stsp and D_H against hand-computed cases (definitions of ../shared/METRICS.md)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nwb_dsr.metrics import power_spectrum_distance, state_space_divergence


def test_dstsp_binned_hand_case():
    x_true = np.array([0.0, 0.0, 1.0, 1.0])[:, None]   # sd 0.5 -> box [-0.05, 1.05], 2 bins
    x_gen = np.array([0.0, 0.0, 0.0, 1.0, 5.0])[:, None]  # 5.0 falls outside the box
    a = 1e-5
    p = [(2 + a) / (4 + 2 * a)] * 2
    q = [(3 + a) / (4 + 2 * a), (1 + a) / (4 + 2 * a)]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert state_space_divergence(x_true, x_gen, n_bins=2) == pytest.approx(expected, rel=1e-12)


def test_dstsp_binned_2d_hand_case():
    x_true = np.array([[0, 0], [1, 1], [0, 1], [1, 0]], dtype=float)
    x_gen = np.array([[0, 0], [0, 0], [1, 1], [1, 1]], dtype=float)
    a, nb = 1e-5, 4
    p = np.full(4, (1 + a) / (4 + a * nb))
    q = np.array([2 + a, a, a, 2 + a]) / (4 + a * nb)
    expected = float(np.sum(p * np.log(p / q)))
    assert state_space_divergence(x_true, x_gen, n_bins=2) == pytest.approx(expected, rel=1e-12)


def test_dstsp_edges_come_from_the_true_data_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 2))
    assert state_space_divergence(x, x) == pytest.approx(0.0, abs=1e-12)
    assert state_space_divergence(x, 3 * x) > 0.1
    assert math.isnan(state_space_divergence(x, x + 50))


def test_dstsp_gaussian_mixture_for_six_or_more_dims():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6))
    assert state_space_divergence(x, x) == pytest.approx(0.0, abs=1e-12)
    near = state_space_divergence(x, x + 0.1)
    far = state_space_divergence(x, x + 2.0)
    assert 0 < near < far


def test_dstsp_gaussian_mixture_matches_a_naive_reference():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 6)), rng.normal(0.5, 1.0, size=(40, 6))
    got = state_space_divergence(x, y, n_samples=50, seed=3)
    r = np.random.default_rng(3)
    idx = r.integers(0, 30, size=50)
    s = x[idx] + r.standard_normal((50, 6))

    def dens(pt, pts):
        return np.mean([np.exp(-0.5 * np.sum((pt - q) ** 2)) / (2 * np.pi) ** 3 for q in pts])

    ref = np.mean([np.log(dens(si, x)) - np.log(dens(si, y)) for si in s])
    assert got == pytest.approx(ref, rel=1e-9)


def _naive_dh(x, y):
    def spec(v):
        v = (v - v.mean()) / v.std()
        n = len(v)
        k = np.arange(n // 2 + 1)
        F = np.array([sum(v[t] * np.exp(-2j * np.pi * f * t / n) for t in range(n)) for f in k])
        p = np.abs(F) ** 2
        return p / p.sum()
    p, q = spec(x), spec(y)
    return math.sqrt(max(0.0, 1 - np.sum(np.sqrt(p * q))))


def test_dh_hand_case_without_smoothing():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=16), rng.normal(size=16)
    got = power_spectrum_distance(x[:, None], y[:, None], smoothing=0)
    assert got == pytest.approx(_naive_dh(x, y), rel=1e-9)


def test_dh_is_mean_over_dimensions_and_bounded():
    rng = np.random.default_rng(0)
    t = np.arange(2048)
    a = np.stack([np.sin(0.05 * t), np.sin(0.3 * t)], 1)
    b = np.stack([np.sin(0.05 * t), rng.normal(size=2048)], 1)
    per = power_spectrum_distance(a, b, per_dim=True)
    assert per[0] == pytest.approx(0.0, abs=1e-9) and 0 < per[1] <= 1
    assert power_spectrum_distance(a, b) == pytest.approx(per.mean())


@pytest.mark.parametrize("fn,args,match", [
    (power_spectrum_distance, (np.zeros((10, 2)), np.zeros((12, 2))), "same length"),
    (state_space_divergence, (np.zeros((10, 2)), np.zeros((10, 3))), "same number of dimensions"),
    (state_space_divergence, (np.zeros((2, 2, 2)), np.zeros((10, 2))), "n_steps, n_dims"),
])
def test_metric_input_errors(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)
