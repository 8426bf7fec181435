"""Evaluation: PE(n), co-bps, Poisson log-likelihood and the evaluate() entry point."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from nwb_dsr import DSR, NotFittedError, Observations  # noqa: E402
from nwb_dsr.analysis import (co_bps, evaluate, poisson_loglik, prediction_error,  # noqa: E402
                              state_space_divergence)
from nwb_dsr.training.trainer import free_run  # noqa: E402


def _sine_data(n=3000, dt=0.05):
    t = np.arange(n) * dt
    return np.stack([np.sin(t), np.cos(t), 0.5 * np.sin(2 * t)], axis=1)


@pytest.fixture(scope="module")
def continuous_est():
    x = _sine_data()
    est = DSR(latent_dim=3, hidden_dim=8, tau=10, epochs=2, batches_per_epoch=5, batch_size=32,
              eval_every=1, progress=False).fit(x, bin_size=0.05)
    return est, x


@pytest.fixture(scope="module")
def counts_est():
    rng = np.random.default_rng(0)
    t = np.arange(3000) * 0.05
    rates = np.exp(0.8 * np.stack([np.sin(t), np.cos(t), np.sin(t + 1), np.cos(2 * t)], 1))
    counts = rng.poisson(rates)
    obs = Observations(counts, kind="counts", bin_size=0.05)
    est = DSR(latent_dim=2, hidden_dim=8, tau=10, epochs=2, batches_per_epoch=5, batch_size=32,
              progress=False).fit(obs)
    return est, obs


def _make_linear(est, a):
    """Make the fitted estimator the exact linear map z' = a ⊙ z read out as x = z."""
    lat, o = est.latent_model_, est.observation_model_
    M = lat.latent_dim
    with torch.no_grad():
        lat.A.copy_(torch.as_tensor(a, dtype=torch.float32))
        lat.W.zero_(); lat.h.zero_()
        o.B.copy_(torch.eye(o.n_obs, M)); o.b.zero_()
        o.loc.zero_(); o.scale.fill_(1.0)
    return est


@pytest.fixture()
def linear_est():
    x = np.random.default_rng(1).normal(size=(400, 2))
    est = DSR(model="plrnn", latent_dim=2, tau=5, epochs=1, batches_per_epoch=1, batch_size=4,
              validation_fraction=0, progress=False).fit(x)
    return _make_linear(est, [0.9, -0.5])


# ----------------------------------------------------------------------------- PE(n)
def test_prediction_error_of_known_linear_map(linear_est):
    x = np.random.default_rng(2).normal(size=(300, 2))
    a = np.array([0.9, -0.5])
    ns = [1, 3, 7]
    starts = np.arange(300 - 7)  # the same starts for every n: those that leave max(n) bins
    hand = [np.mean((a ** n * x[starts] - x[starts + n]) ** 2) for n in ns]
    np.testing.assert_allclose(prediction_error(linear_est, x, ns), hand, rtol=1e-5)
    assert prediction_error(linear_est, x, 3) == pytest.approx(
        np.mean((a ** 3 * x[:297] - x[3:]) ** 2), rel=1e-5)


def test_prediction_error_subsamples_starts_evenly(linear_est):
    x = np.random.default_rng(3).normal(size=(500, 2))
    a = np.array([0.9, -0.5])
    starts = np.round(np.linspace(0, 500 - 2 - 1, 10)).astype(int)
    hand = np.mean((a ** 2 * x[starts] - x[starts + 2]) ** 2)
    assert prediction_error(linear_est, x, 2, max_starts=10) == pytest.approx(hand, rel=1e-5)


def test_prediction_error_over_segments(linear_est):
    rng = np.random.default_rng(4)
    segs = [rng.normal(size=(50, 2)), rng.normal(size=(3, 2)), rng.normal(size=(40, 2))]
    a = np.array([0.9, -0.5])
    err = np.concatenate([(a * s[:-1] - s[1:]) ** 2 for s in segs]).mean()
    assert prediction_error(linear_est, segs, 1) == pytest.approx(err, rel=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must contain integers >= 1"),
    (dict(n=[1, 2.5]), "positive integer"),
    (dict(n=1000), "longer than the largest horizon"),
    (dict(n=1, max_starts=0), "max_starts"),
])
def test_prediction_error_errors(linear_est, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prediction_error(linear_est, np.zeros((100, 2)), **kwargs)


def test_prediction_error_needs_fitted_estimator():
    with pytest.raises(NotFittedError):
        prediction_error(DSR(), np.zeros((100, 2)))
    with pytest.raises(TypeError, match="DSR"):
        prediction_error(object(), np.zeros((100, 2)))


# ----------------------------------------------------------------------------- co-bps
def _nll_by_hand(r, n):
    tot = 0.0
    for ri, ni in zip(np.ravel(r), np.ravel(n)):
        ri = 1e-9 if ri == 0 else ri
        tot += ri - ni * math.log(ri) + math.lgamma(ni + 1)
    return tot


def test_co_bps_matches_hand_computation():
    counts = np.array([[0, 2], [1, 0], [3, 1], [0, 1]], dtype=float)
    rates = np.array([[0.2, 1.5], [1.0, 0.3], [2.5, 0.8], [0.0, 1.2]])
    null = np.tile(counts.mean(0), (4, 1))
    hand = (_nll_by_hand(null, counts) - _nll_by_hand(rates, counts)) / (counts.sum() * math.log(2))
    assert co_bps(rates, counts) == pytest.approx(hand, rel=1e-12)
    assert co_bps(null, counts) == 0.0


def test_co_bps_trials_axes_and_nan_mask():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(5, 20, 3)).astype(float)
    rates = rng.uniform(0.5, 1.5, size=counts.shape)
    flat = co_bps(rates.reshape(-1, 3), counts.reshape(-1, 3))
    assert co_bps(rates, counts) == pytest.approx(flat)  # null: mean over trials and time
    counts[0, 0, 0] = np.nan
    m = ~np.isnan(counts)
    null = np.broadcast_to(np.nanmean(counts, axis=(0, 1)), counts.shape)
    hand = (_nll_by_hand(null[m], counts[m]) - _nll_by_hand(rates[m], counts[m])) \
        / (np.nansum(counts) * math.log(2))
    assert co_bps(rates, counts) == pytest.approx(hand)


@pytest.mark.parametrize("rates, counts, match", [
    (np.ones((3, 2)), np.ones((3, 3)), "same shape"),
    (-np.ones((3, 2)), np.ones((3, 2)), "non-negative"),
    (np.full((3, 2), np.nan), np.ones((3, 2)), "NaN"),
])
def test_co_bps_errors(rates, counts, match):
    with pytest.raises(ValueError, match=match):
        co_bps(rates, counts)


def test_poisson_loglik_by_hand():
    r = np.array([[0.5, 2.0], [1.0, 0.1]])
    n = np.array([[1, 3], [0, 0]])
    assert poisson_loglik(r, n) == pytest.approx(-_nll_by_hand(r, n) / 2)


# ----------------------------------------------------------------------------- evaluate
BASE_KEYS = {"kind", "bin_size", "n_bins", "n_generate", "dstsp", "dh", "prediction_error",
             "lyapunov_spectrum", "lambda_max_per_s", "lambda_max_per_bin", "lyapunov_sum_per_s",
             "tau_pred_bins", "tau_pred_s", "tau", "tau_info"}


def test_evaluate_continuous_keys_and_generation_protocol(continuous_est):
    est, x = continuous_est
    res = evaluate(est, x, pe_steps=(1, 5, 20), n_lyapunov=2000)
    assert BASE_KEYS <= set(res) and "poisson_loglik_per_bin" not in res
    assert sorted(res["prediction_error"], key=int) == ["1", "5", "20"]
    assert len(res["lyapunov_spectrum"]) == 3
    assert res["tau"] == 10 and res["n_generate"] == len(x)
    json.dumps(res, allow_nan=False)
    # D_stsp as ../METRICS.md: forced state at the first point, 1.25 T steps, first 0.25 T
    # dropped (checked on a slowly decaying linear map, whose free run stays in the data's box)
    est = DSR(model="plrnn", latent_dim=3, tau=5, epochs=1, batches_per_epoch=1, batch_size=4,
              validation_fraction=0, progress=False).fit(x, bin_size=0.05)
    _make_linear(est, [0.9995, 0.999, 0.9998])
    res = evaluate(est, x, pe_steps=(5,), n_lyapunov=200)
    # the sum of the exponents is log|det J| per step, whatever the alignment of the basis
    assert res["lyapunov_sum_per_s"] == pytest.approx(np.log([0.9998, 0.9995, 0.999]).sum() / 0.05,
                                                      rel=1e-3)
    T = len(x)
    with torch.no_grad():
        Z = free_run(est.latent_model_, torch.as_tensor(est.transform(x)[0][:1]), T + T // 4)[0, T // 4:]
        gen = est.observation_model_.mean(Z).numpy().astype(np.float64)
    assert res["dstsp"] == pytest.approx(state_space_divergence(x, gen))
    assert res["prediction_error"]["5"] == pytest.approx(prediction_error(est, x, 5))
    if res["lambda_max_per_bin"] is not None and res["lambda_max_per_bin"] > 0:
        assert res["tau_pred_bins"] == pytest.approx(math.log(2) / res["lambda_max_per_bin"])


def test_evaluate_counts_keys_and_figures(counts_est, tmp_path):
    est, obs = counts_est
    res = evaluate(est, obs, n_generate=1000, pe_steps=(1, 5), n_lyapunov=1000,
                   figures=tmp_path / "figs")
    assert BASE_KEYS <= set(res)
    assert {"poisson_loglik_per_bin", "bits_per_spike_1step"} <= set(res)
    assert res["poisson_loglik_per_bin"] < 0
    assert {"loss", "attractor", "spectra", "raster", "lyapunov"} <= set(res["figures"])
    for p in res["figures"].values():
        assert Path(p).is_file() and Path(p).stat().st_size > 1000
        assert Path(p).parent == tmp_path / "figs"
    json.dumps(res, allow_nan=False)


def test_evaluate_continuous_figures(continuous_est, tmp_path):
    est, x = continuous_est
    res = evaluate(est, x[:1000], pe_steps=(), n_lyapunov=500, figures=tmp_path)
    assert res["prediction_error"] == {}
    assert "raster" not in res["figures"]
    assert all(Path(p).is_file() for p in res["figures"].values())


def test_evaluate_errors(continuous_est):
    est, x = continuous_est
    with pytest.raises(ValueError, match="channels"):
        evaluate(est, x[:, :2])
    with pytest.raises(ValueError, match="n_generate"):
        evaluate(est, x, n_generate=1)
    with pytest.raises(NotFittedError):
        evaluate(DSR(), x)


def _rotation(period: float):
    """A shallow PLRNN that rotates its 2-d state by 2π/period a step: z' = R z, written as
    R relu(z) − R relu(−z)."""
    from nwb_dsr.models import ShallowPLRNN
    m = ShallowPLRNN(2, 4)
    a = 2 * math.pi / period
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    with torch.no_grad():
        m.A.zero_(); m.h1.zero_(); m.h2.zero_()
        m.W2.copy_(torch.cat([torch.eye(2), -torch.eye(2)]))
        m.W1.copy_(torch.cat([R, -R], 1))
    return m


def test_spectral_selection_ranks_a_free_run_at_the_wrong_rhythm_after_the_right_one():
    from nwb_dsr.models import GaussianObservation
    from nwb_dsr.protocol import (RHYTHM_PENALTY, SPECTRUM_DH_WEIGHT, EvaluationProtocol)
    t = np.arange(3000)
    rng = np.random.default_rng(0)
    x = np.stack([np.sin(2 * np.pi * t / 20), np.cos(2 * np.pi * t / 20)], 1)
    x = x + 0.05 * rng.normal(size=x.shape)
    readout = GaussianObservation(2, 2)
    readout.fit_init(x)
    spectral = EvaluationProtocol(n_steps=3000, selection="spectrum")
    right = spectral.evaluate(_rotation(20), readout, [x])
    wrong = spectral.evaluate(_rotation(30), readout, [x])
    assert right.collapse is None and wrong.collapse is None
    assert right.rhythm_error <= 0.05 and 0.25 <= wrong.rhythm_error <= 0.4
    assert right.rank == pytest.approx(right.dstsp + SPECTRUM_DH_WEIGHT * right.dh)
    assert wrong.rank == pytest.approx(wrong.dstsp + SPECTRUM_DH_WEIGHT * wrong.dh
                                       + RHYTHM_PENALTY)
    assert right.rank < wrong.rank
    # the score is the same under either selection; "score" ranks by it
    plain = EvaluationProtocol(n_steps=3000).evaluate(_rotation(30), readout, [x])
    assert plain.rhythm_error is None and plain.rank == plain.score
    assert wrong.score == pytest.approx(wrong.dstsp + 4 * wrong.dh) == plain.score


def test_spectral_check_runs_from_states_spread_over_the_data_it_is_given():
    from nwb_dsr.models import GaussianObservation
    from nwb_dsr.protocol import SPECTRAL_STARTS, EvaluationProtocol
    t = np.arange(3000)
    x = np.stack([np.sin(2 * np.pi * t / 20), np.cos(2 * np.pi * t / 20)], 1)
    readout = GaussianObservation(2, 2)
    readout.fit_init(x)
    final = EvaluationProtocol(n_steps=50_000, n_starts=3, n_probes=4, probe_steps=2000)
    res = final.spectral_check(_rotation(20), readout, [x[:1500], x[1500:]])
    # SPECTRAL_STARTS runs (not n_starts) of probe_steps steps (not n_steps), no probes
    assert res.generated.shape == (SPECTRAL_STARTS * 2000, 2) and res.n_probes == 0
    assert res.rhythm_error <= 0.05 and res.collapse is None
    assert res.rank == res.spectral_rank == pytest.approx(
        EvaluationProtocol.spectrum_rank(res.dstsp, res.dh, res.rhythm_error, False))


def test_rhythm_error_is_that_of_the_typical_run_not_of_the_runs_pooled():
    from nwb_dsr.analysis.lyapunov import spectral_peak
    from nwb_dsr.protocol import RHYTHM_TOLERANCE, rhythm_error
    t = np.arange(4000)
    rng = np.random.default_rng(1)
    ref = [np.sin(2 * np.pi * t / 20)[:, None] + 0.3 * rng.normal(size=(4000, 1))]
    right = np.sin(2 * np.pi * t / 20)[:, None]
    wrong = [np.sin(2 * np.pi * t / 32)[:, None] + rng.normal(size=(4000, 1)) for _ in range(3)]
    # the one clean run at the data's rhythm leads the pooled spectrum ...
    assert spectral_peak([right] + wrong)["frequency"] == spectral_peak(ref)["frequency"]
    # ... but three of the four runs are at another rhythm
    assert rhythm_error(ref, [right] + wrong) == pytest.approx(12 / 32, abs=0.03)
    assert rhythm_error(ref, [right, right] + wrong[:1]) <= RHYTHM_TOLERANCE
    assert rhythm_error(ref, None) == math.inf
    flat = [rng.normal(size=(4000, 1))]   # a reference without a rhythm
    assert rhythm_error(flat, [right]) is None
