"""The one configuration, its resolution against data, the evaluation protocol, and the
scikit-learn estimator contract."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils import estimator_checks as checks

from nwb_dsr import DSR, Observations
from nwb_dsr.cli import build_parser
from nwb_dsr.config import DSRConfig, ResolvedConfig
from nwb_dsr.policies import FALLBACK_TAU, resolve
from nwb_dsr.protocol import (COLLAPSE_PENALTY, EvaluationProtocol, counts_at_rest,
                              detect_collapse)

TINY = dict(hidden_dim=8, tau=5, epochs=1, batches_per_epoch=2, batch_size=16, progress=False)


def test_dsr_keywords_and_defaults_are_the_configuration():
    sig = inspect.signature(DSR.__init__)
    defaults = DSRConfig.defaults()
    assert [p for p in sig.parameters if p != "self"] == list(defaults)
    assert DSR().get_params() == defaults
    assert all(name in DSR.__doc__ for name in defaults)


def test_cli_fit_options_default_to_the_configuration():
    args = build_parser().parse_args(["fit", "x.nwb", "--source", "units"])
    for name, (_, f) in DSRConfig.settings().items():
        if f.metadata.get("cli"):
            assert getattr(args, name) is None  # None: DSR() supplies the configuration's value
    help_text = build_parser()._subparsers._group_actions[0].choices["fit"].format_help()
    assert "(default: auto)" in help_text and "(default: 200)" in help_text


def test_config_round_trips_and_rejects_unknown_settings():
    cfg = DSRConfig.from_params(tau=7, lr=1e-3, mode="gtf")
    assert DSRConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(tau=9).forcing.tau == 9
    with pytest.raises(ValueError, match="unknown setting"):
        DSRConfig.from_params(taus=3)


def test_resolve_turns_every_rule_into_a_number():
    rng = np.random.default_rng(0)
    counts = Observations(rng.poisson(2.0, (800, 12)), kind="counts", bin_size=0.02)
    r = resolve(DSRConfig.from_params(tau=8), counts)
    assert (r.observation.observation, r.forcing.mode, r.model.latent_dim) == \
        ("poisson", "shooting", 3)
    assert r.smoothing_bins == pytest.approx(2.5) and r.forcing.seq_len == 8
    assert r.forcing.alpha == 1.0 and r.optimization.grad_clip == 1.0
    # the budget follows the data: 720 training bins, windows every tau = 8 bins -> 90
    # windows, fewer than one batch of 256: the floor of 20 steps per epoch for counts, which
    # run their whole schedule (no early stopping)
    assert (r.optimization.batches_per_epoch, r.optimization.patience) == (20, None)
    x = Observations(rng.normal(size=(800, 4)), bin_size=0.01)
    r = resolve(DSRConfig.from_params(tau=8, mode="bptt"), x)
    assert (r.observation.observation, r.model.latent_dim, r.forcing.seq_len,
            r.optimization.grad_clip, r.smoothing_bins) == ("gaussian", 8, 200, 10.0, 0.0)
    # two latent units per channel, at most 16
    wide = Observations(rng.normal(size=(800, 9)), bin_size=0.01)
    assert resolve(DSRConfig.from_params(tau=8), wide).model.latent_dim == 16
    # the hidden width follows the latent size (64 per 3 units): 3 -> 64, 8 -> 192
    assert r.model.hidden_dim == 192
    assert resolve(DSRConfig.from_params(tau=8), counts).model.hidden_dim == 64
    assert resolve(DSRConfig.from_params(tau=8, hidden_dim=20), x).model.hidden_dim == 20
    assert ResolvedConfig.from_dict(r.to_dict()) == r


def test_batches_per_epoch_follow_the_amount_of_data():
    def bpe(n_bins, **kw):
        x = Observations(np.random.default_rng(0).normal(size=(n_bins, 2)), bin_size=0.01)
        return resolve(DSRConfig.from_params(tau=10, **kw), x).optimization.batches_per_epoch

    # one pass over the windows (stride 1 for sparse forcing) of the 90 % kept for training
    assert bpe(5000) == 18                        # ceil((4500 - 10) / 256)
    assert bpe(1000) == 10 and bpe(200_000) == 50  # the bounds
    assert bpe(5000, batch_size=64) == 50 and bpe(5000, batches_per_epoch=7) == 7
    assert bpe(5000, validation_fraction=0.0) == 20
    # field potentials (read_lfp's preprocessing): shooting windows every tau bins, 450 of them,
    # two batches; the floor of FIELD_MIN_BATCHES steps
    from nwb_dsr.policies import FIELD_MIN_BATCHES
    lfp = Observations(np.random.default_rng(0).normal(size=(5000, 2)), bin_size=0.01,
                       provenance={"preprocess": {"enabled": True}})
    r = resolve(DSRConfig.from_params(tau=10), lfp)
    assert (r.forcing.mode, r.optimization.batches_per_epoch) == ("shooting", FIELD_MIN_BATCHES)
    assert FIELD_MIN_BATCHES == 50
    assert resolve(DSRConfig.from_params(tau=10, batches_per_epoch=7), lfp) \
        .optimization.batches_per_epoch == 7
    with pytest.raises(ValueError, match="batches_per_epoch must be 'auto' or an integer"):
        DSRConfig.from_params(batches_per_epoch="many")


def test_eval_every_auto_follows_the_observation_layer(lorenz_series):
    from nwb_dsr.policies import COUNTS_EVAL_EVERY
    from nwb_dsr.training.trainer import AUTO_EVAL_EVERY
    rng = np.random.default_rng(0)
    counts = Observations(rng.poisson(2.0, (800, 12)), kind="counts", bin_size=0.02)
    x = Observations(rng.normal(size=(800, 3)), bin_size=0.01)
    assert (COUNTS_EVAL_EVERY, AUTO_EVAL_EVERY) == (10, 5)
    assert resolve(DSRConfig.from_params(tau=8), counts).optimization.eval_every == 10
    assert resolve(DSRConfig.from_params(tau=8), x).optimization.eval_every == 5
    assert resolve(DSRConfig.from_params(tau=8, eval_every=3), counts) \
        .optimization.eval_every == 3
    with pytest.raises(ValueError, match="eval_every must be 'auto' or an integer"):
        DSRConfig.from_params(eval_every=0)
    # continuous data: every 5 epochs, and once more at the end
    est = DSR(**{**TINY, "epochs": 12, "patience": None}).fit(lorenz_series[:2000])
    assert est.history_.val_epochs == [5, 10, 12]


def test_final_checks_auto_follow_the_observation_layer():
    from nwb_dsr.policies import COUNTS_FINAL_CHECKS
    from nwb_dsr.training.trainer import AUTO_FINAL_CHECKS
    rng = np.random.default_rng(0)
    counts = Observations(rng.poisson(2.0, (800, 12)), kind="counts", bin_size=0.02)
    x = Observations(rng.normal(size=(800, 3)), bin_size=0.01)
    assert resolve(DSRConfig.from_params(tau=8), counts).evaluation.n_final_checks == \
        COUNTS_FINAL_CHECKS
    assert resolve(DSRConfig.from_params(tau=8), x).evaluation.n_final_checks == \
        AUTO_FINAL_CHECKS
    assert resolve(DSRConfig.from_params(tau=8, n_final_checks=1), x).evaluation \
        .n_final_checks == 1
    final = EvaluationProtocol.from_config(DSRConfig().evaluation, final=True)
    assert (final.n_steps, final.n_starts) == (100_000, 5)


@pytest.mark.parametrize("params, match", [
    (dict(n_final_checks=0), "n_final_checks must be 'auto' or an integer >= 1; got 0."),
    (dict(n_final_checks=2.0), "n_final_checks must be 'auto' or an integer >= 1; got 2.0."),
    (dict(n_final_steps=99), "n_final_steps must be an integer >= 100; got 99."),
    (dict(n_val_steps=20_000, n_final_steps=15_000),
     r"n_final_steps must be at least n_val_steps \(20000\): the final check runs longer "
     r"than validation; got 15000."),
])
def test_final_check_settings_give_one_clear_error(params, match):
    with pytest.raises(ValueError, match=match):
        DSRConfig.from_params(**params)


def test_tau_auto_falls_back_with_a_warning_on_data_too_short_for_an_estimate():
    trials = [np.random.default_rng(k).poisson(1.0, (40, 5)) for k in range(30)]
    obs = Observations(trials, kind="counts", bin_size=0.01)
    with pytest.warns(RuntimeWarning, match="could not be estimated"):
        r = resolve(DSRConfig(), obs)
    assert r.forcing.tau == FALLBACK_TAU and r.tau_info["fallback"] is True


def test_score_is_the_negative_validation_score(lorenz_series):
    est = DSR(**{**TINY, "epochs": 4, "eval_every": 4}).fit(lorenz_series[:2000])
    val = lorenz_series[1800:2000]  # the held-back last 10 %
    assert est.score(val) == pytest.approx(-est.history_.val_score[-1], rel=1e-9)


def test_collapsed_checkpoints_rank_after_the_others():
    t = np.linspace(0, 80, 4000)
    x = np.stack([np.sin(t), np.cos(t)], 1)
    from nwb_dsr.models import GaussianObservation, PLRNN
    readout = GaussianObservation(2, 2); readout.fit_init(x)
    lat = PLRNN(2)
    import torch
    with torch.no_grad():  # a contraction onto 0: the free run comes to rest
        lat.A.fill_(0.5); lat.W.zero_(); lat.h.zero_()
    res = EvaluationProtocol(max_steps=1000).evaluate(lat, readout, [x])
    assert res.collapse == "fixed_point" and res.score >= COLLAPSE_PENALTY
    assert np.isfinite(res.score)


def test_protocol_flags_collapse_and_counts_at_rest():
    t = np.linspace(0, 50, 5000)
    ref = np.stack([np.sin(t), np.cos(t)], 1)
    assert detect_collapse(ref[::-1], ref) is None
    assert detect_collapse(0 * ref + 1, ref) == "fixed_point"
    assert detect_collapse(np.full_like(ref, np.nan), ref) == "non_finite"
    rng = np.random.default_rng(1)
    assert counts_at_rest([rng.poisson(3.0, (4000, 10))], 5.0)
    assert not counts_at_rest([rng.poisson(3.0 * (1 + np.sin(t[:4000, None])) * np.ones(10))],
                              5.0)
    p = EvaluationProtocol(max_steps=500)
    assert p.length(100) == 500 and p.length(10_000) == 500
    assert EvaluationProtocol(n_steps=77).length(10) == 77
    assert p.selection_score(0.5, 0.1) == pytest.approx(0.9)


def test_sklearn_clone_and_grid_search(lorenz_series):
    est = DSR(**TINY)
    assert clone(est).get_params() == est.get_params()
    assert repr(est).startswith("DSR(") and "tau=5" in repr(est)
    X = lorenz_series[:1200]
    # time-ordered folds; score = -(D_stsp + 4 D_H) of a free run against the held-out fold
    small = DSR(**{**TINY, "epochs": 6, "batches_per_epoch": 10, "latent_dim": 3})
    gs = GridSearchCV(small, {"tau": [3, 6]}, cv=[(np.arange(800), np.arange(800, 1200))],
                      error_score="raise").fit(X)
    assert gs.best_params_["tau"] in (3, 6) and hasattr(gs.best_estimator_, "latent_model_")
    assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))


# scikit-learn's estimator checks that apply to a time-series estimator (the others feed
# i.i.d. samples too short for one training window, or expect predict to return one row per
# sample of a classifier or regressor)
SKLEARN_CHECKS = [checks.check_parameters_default_constructible,
                  checks.check_no_attributes_set_in_init, checks.check_get_params_invariance,
                  checks.check_set_params, checks.check_estimator_repr,
                  checks.check_do_not_raise_errors_in_init_or_set_params]


@pytest.mark.parametrize("check", SKLEARN_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_estimator_checks(check):
    check("DSR", DSR(**TINY))


def test_tau_auto_on_short_trials_of_a_chaotic_population_falls_back_instead_of_guessing():
    """Rosenstein's curve pooled over 2-s trials cannot level off: the estimate would sit in
    the noise-driven first rise (several times the true λ_max), so the fallback is used."""
    from nwb_dsr.datasets import make_population
    pop = make_population("lorenz63", n_units=30, n_trials=120, trial_duration=2.0, seed=0)
    with pytest.warns(RuntimeWarning, match="too short for Rosenstein's divergence curve"):
        r = resolve(DSRConfig(), pop.observations())
    assert r.forcing.tau == FALLBACK_TAU and r.tau_info["fallback"] is True


def test_tau_auto_on_counts_spans_four_to_five_kernel_widths(monkeypatch):
    import nwb_dsr.policies as policies
    monkeypatch.setattr(policies, "choose_tau",
                        lambda *a, **k: (2, {"method": "rosenstein", "bounded": False}))
    counts = np.random.default_rng(0).poisson(1.0, (3000, 5))
    r = resolve(DSRConfig(), Observations(counts, kind="counts", bin_size=0.01))
    # the default kernel is 0.05 s = 5 bins
    assert r.forcing.tau == 20 and r.tau_info["method"] == "kernel_bound"
    r = resolve(DSRConfig.from_params(smoothing=0.1),
                Observations(counts, kind="counts", bin_size=0.01))
    assert r.forcing.tau == 40 and r.tau_info["lower_bound"] == 40.0
    monkeypatch.setattr(policies, "choose_tau",
                        lambda *a, **k: (31, {"method": "rosenstein", "bounded": False}))
    r = resolve(DSRConfig(), Observations(counts, kind="counts", bin_size=0.01))
    assert r.forcing.tau == 25 and r.tau_info["upper_bound"] == 25.0
