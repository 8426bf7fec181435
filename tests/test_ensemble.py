"""Ensembles over seeds: the selection rule, the members' figures, and how they are kept."""
from __future__ import annotations

import numpy as np
import pytest

from nwb_dsr import DSR, Observations, ensemble_summary, evaluate
from nwb_dsr.datasets import make_lorenz_population
from nwb_dsr.collapse import CollapseWarning
from nwb_dsr.estimator import member_seed


@pytest.fixture(scope="module")
def counts():
    pop = make_lorenz_population(n_units=20, duration=40.0, n_lfp_channels=0, spike_times=False,
                                 seed=1)
    return Observations(pop.counts, kind="counts", bin_size=0.01)


KW = dict(epochs=4, eval_every=2, batches_per_epoch=4, batch_size=32, hidden_dim=16,
          progress=False)


@pytest.fixture(scope="module")
def ensemble_fit(counts):
    return DSR(seed=5, ensemble=3, **KW).fit(counts)


def test_counts_fit_an_ensemble_of_two_by_default(counts):
    est = DSR(seed=5, epochs=1, batches_per_epoch=2, batch_size=16, hidden_dim=8,
              progress=False).fit(counts)
    assert est.resolved_config_.optimization.ensemble == 2
    assert [m["seed"] for m in est.members_] == [5, member_seed(5, 1)]


def test_every_member_keeps_its_figures(ensemble_fit):
    est = ensemble_fit
    assert [m["seed"] for m in est.members_] == [member_seed(5, k) for k in range(3)]
    for m in est.members_:
        for key in ("score", "D_stsp", "D_H", "lambda_max", "heldout_loglik",
                    "heldout_bits_per_spike", "epochs", "seconds"):
            assert key in m
        assert m["epochs"] == 4
        assert m["heldout_loglik"] is not None and m["heldout_loglik"] < 0


def test_the_member_with_the_lowest_validation_score_is_the_model(ensemble_fit, counts):
    est = ensemble_fit
    scores = [m["score"] for m in est.members_]
    selected = [m for m in est.members_ if m["selected"]]
    assert len(selected) == 1 and selected[0]["score"] == min(scores)
    assert est.history_.best_score == min(scores)
    # the selected member is exactly the single fit from its seed: switched off, the ensemble
    # is the plain fit
    single = DSR(seed=selected[0]["seed"], ensemble=1, **KW).fit(counts)
    assert single.resolved_config_.optimization.ensemble == 1
    a, b = est.to_state()[1], single.to_state()[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(single.members_) == 1 and "lambda_max" not in single.members_[0]


def test_continuous_data_fit_one_member_by_default(lorenz_series):
    est = DSR(hidden_dim=8, tau=10, epochs=2, batches_per_epoch=3, progress=False, restarts=0)
    est.fit(lorenz_series[:1500])
    assert est.resolved_config_.optimization.ensemble == 1
    assert len(est.members_) == 1 and est.members_[0]["selected"]
    assert "ensemble" not in evaluate(est, lorenz_series[:500], n_lyapunov=200, pe_steps=(1,))


def test_a_collapsed_fit_of_continuous_data_is_restarted_from_the_next_seed(lorenz_series):
    # two epochs of three steps: the free run has not left the start and is flat
    kw = dict(hidden_dim=8, tau=10, epochs=2, batches_per_epoch=3, progress=False, seed=4)
    with pytest.warns(CollapseWarning):
        est = DSR(**kw).fit(lorenz_series[:1500])
    r = est.resolved_config_.optimization
    assert (r.ensemble, r.restarts) == (1, 1)
    first, second = est.members_
    assert first["collapse"] is not None and not first["restart"] and second["restart"]
    assert second["seed"] == member_seed(4, 1)
    assert all("lambda_max" in m and "heldout_loglik" in m for m in est.members_)
    assert sum(m["selected"] for m in est.members_) == 1
    assert evaluate(est, lorenz_series[:500], n_lyapunov=200, pe_steps=(1,))["ensemble"][
        "n_members"] == 2
    # the first member is the plain fit of the seed
    plain = DSR(**kw, restarts=0).fit(lorenz_series[:1500])
    assert plain.members_[0]["score"] == first["score"]
    # spike counts have two members and no restart
    counts = np.random.default_rng(0).poisson(1.0, size=(600, 4))
    cfg = DSR(tau=5).config()
    from nwb_dsr.policies import resolve
    assert resolve(cfg, Observations(counts, kind="counts")).optimization.restarts == 0


def test_restarts_stop_when_the_time_budget_is_spent(lorenz_series, monkeypatch):
    """The first member spends the whole budget and collapses: no restart. The clock moves
    10 ms at every reading, so the budget ends after the same steps on any machine, busy or
    idle (on the wall clock a loaded machine ran no epoch in 0.5 s)."""
    import itertools
    import time
    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: 0.01 * next(ticks))
    kw = dict(latent_dim=3, hidden_dim=8, tau=10, epochs=None, batches_per_epoch=3,
              progress=False, max_time=0.5, restarts=3)
    with pytest.warns(CollapseWarning):
        est = DSR(**kw).fit(lorenz_series[:1500])
    assert est.members_[0]["collapse"] is not None and len(est.members_) == 1
    assert est.members_[0]["stopped"] == "max_time" and est.history_.epochs >= 5


def test_summary_spreads_the_members_figures(ensemble_fit):
    s = ensemble_summary(ensemble_fit)
    lams = [m["lambda_max"] for m in ensemble_fit.members_]
    assert s["n_members"] == 3
    assert s["lambda_max"]["median"] == pytest.approx(np.median(lams))
    assert s["lambda_max"]["sd"] == pytest.approx(np.std(lams, ddof=1))
    assert (s["lambda_max"]["min"], s["lambda_max"]["max"]) == (min(lams), max(lams))
    assert s["selected_seed"] in [m["seed"] for m in ensemble_fit.members_]
    assert 0 < s["lambda_max_sign_agreement"] <= 1
    assert s["members"][f"seed_{s['selected_seed']}"]["selected"] is True
    # counts fits are probed for runaways: each member's count is listed
    assert [s["members"][f"seed_{m['seed']}"]["probes_runaway"]
            for m in ensemble_fit.members_] == [m["probes_runaway"] for m in ensemble_fit.members_]
    assert all(isinstance(m["probes_runaway"], int) for m in ensemble_fit.members_)
    # and how each member's training went
    for m in ensemble_fit.members_:
        listed = s["members"][f"seed_{m['seed']}"]
        assert (listed["epochs"], listed["best_epoch"], listed["stopped"]) == (
            4, m["best_epoch"], "epochs")
        assert listed["best_epoch"] in (2, 4)



def test_summary_names_the_dynamics_class_of_each_member(ensemble_fit):
    """Each member's λ_max is read as a fixed point, cycle or chaos (the zero band of a
    100,000-step estimate at the fit's bins); members in different classes are flagged."""
    import copy
    from nwb_dsr.analysis import at_rest_from_collapse, dynamics_class, zero_exponent_band
    from nwb_dsr.cli import _ensemble_line
    eps = zero_exponent_band(ensemble_fit.bin_size_)
    assert eps == pytest.approx(20.0 / (100_000 * ensemble_fit.bin_size_))
    s = ensemble_summary(ensemble_fit)
    want = [dynamics_class(m["lambda_max"], eps, at_rest_from_collapse(m["collapse"]))
            for m in ensemble_fit.members_]
    assert [s["members"][f"seed_{m['seed']}"]["dynamics"]
            for m in ensemble_fit.members_] == want
    assert sum(s["dynamics"]["counts"].values()) == 3
    assert s["dynamics"]["epsilon_per_s"] == pytest.approx(eps)
    chosen = want[[m["selected"] for m in ensemble_fit.members_].index(True)]
    assert s["dynamics"]["agreement"] == pytest.approx(want.count(chosen) / 3)
    # a chaotic member beside a cycle and a fixed point (its free run came to rest): one in
    # three agree
    fit = copy.copy(ensemble_fit)
    fit.members_ = [{**m, "lambda_max": lam, "collapse": c, "selected": i == 0}
                    for i, (m, lam, c) in enumerate(zip(ensemble_fit.members_,
                                                        (0.8, 0.1 * eps, -0.5),
                                                        (None, None, "fixed_point")))]
    s = ensemble_summary(fit)
    assert s["dynamics"]["counts"] == {"fixed point": 1, "limit cycle": 1, "chaos": 1}
    assert s["dynamics"]["agreement"] == pytest.approx(1 / 3)
    line = _ensemble_line(s)
    assert ("dynamics fixed point 1, limit cycle 1, chaos 1 (the members disagree: this fit "
            "does not settle the dynamics class)") in line
    # a negative exponent whose run does not come to rest: a periodic orbit of the map
    fit.members_ = [{**m, "collapse": None} for m in fit.members_]
    assert ensemble_summary(fit)["members"][f"seed_{fit.members_[2]['seed']}"]["dynamics"] \
        == "periodic orbit of the map"
    # members that agree are not flagged; a member without a finite λ_max is undetermined
    fit.members_ = [{**m, "lambda_max": lam} for m, lam in
                    zip(fit.members_, (0.8, 0.9, None))]
    s = ensemble_summary(fit)
    assert s["dynamics"]["counts"] == {"chaos": 2, "undetermined": 1}
    assert "disagree" in _ensemble_line(s)
    fit.members_ = [{**m, "lambda_max": lam} for m, lam in zip(fit.members_, (0.8, 0.9, 1.0))]
    s = ensemble_summary(fit)
    assert s["dynamics"]["agreement"] == 1.0 and "disagree" not in _ensemble_line(s)

def test_members_survive_save_load_and_nwb_write_back(ensemble_fit, counts, tmp_path):
    from nwb_dsr.nwb import read_dynamics, write_dynamics
    from nwb_dsr.datasets import write_lorenz_nwb
    loaded = DSR.load(ensemble_fit.save(tmp_path / "m.npz"))
    assert loaded.members_ == ensemble_fit.members_
    metrics = evaluate(ensemble_fit, counts, n_lyapunov=500, pe_steps=(1,))
    src = write_lorenz_nwb(tmp_path / "rec.nwb", n_units=20, duration=40.0, n_lfp_channels=0,
                           seed=1)
    out = write_dynamics(src, ensemble_fit, counts, metrics=metrics, out=tmp_path / "fit.nwb")
    back = read_dynamics(out)
    assert back.members_ == ensemble_fit.members_
    # where its free runs and Lyapunov runs start
    for other in (loaded, back):
        np.testing.assert_array_equal(other.start_states_, ensemble_fit.start_states_)
        np.testing.assert_array_equal(other.generate(20), ensemble_fit.generate(20))
    from pynwb import NWBHDF5IO
    with NWBHDF5IO(str(out), "r") as io:
        table = io.read().processing["dynamics"]["dsr"].metrics.to_dataframe()
    rows = dict(zip(table.metric, zip(table.value, table.unit)))
    lams = [m["lambda_max"] for m in ensemble_fit.members_]
    assert rows["ensemble.lambda_max.median"] == (pytest.approx(np.median(lams)), "1/s")
    for m in ensemble_fit.members_:
        assert rows[f"ensemble.members.seed_{m['seed']}.lambda_max"][0] == \
            pytest.approx(m["lambda_max"])
        assert rows[f"ensemble.members.seed_{m['seed']}.epochs"] == (4.0, "epochs")
    assert rows["ensemble.dynamics.epsilon_per_s"][1] == "1/s"
    assert 0 < rows["ensemble.dynamics.agreement"][0] <= 1


def test_a_time_budget_only_stops_training_early(lorenz_series):
    """The schedule follows the epochs: a budget the fit stays within changes nothing."""
    kw = dict(hidden_dim=8, tau=10, epochs=3, batches_per_epoch=3, progress=False, seed=2)
    a = DSR(**kw).fit(lorenz_series[:1500]).to_state()[1]
    b = DSR(max_time=600.0, **kw).fit(lorenz_series[:1500]).to_state()[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_the_time_budget_is_shared_by_the_members(counts):
    est = DSR(epochs=None, max_time=3.0, ensemble=3,
              **{k: v for k, v in KW.items() if k != "epochs"})
    est.fit(counts)
    assert len(est.members_) == 3
    assert all(m["stopped"] == "max_time" for m in est.members_)
    assert sum(m["seconds"] for m in est.members_) < 6.0
    # the summary (so the report, the NWB table and the command line) says so
    from nwb_dsr.cli import _ensemble_line
    s = ensemble_summary(est)
    assert [v["stopped"] for v in s["members"].values()] == ["max_time"] * 3
    line = _ensemble_line(s)
    assert "stopped by the time budget: " + ", ".join(
        f"seed {m['seed']} after {m['epochs']} epochs" for m in est.members_) in line


def test_the_selected_members_lambda_max_is_the_estimators(ensemble_fit):
    from nwb_dsr.analysis import lyapunov_spectrum
    selected = next(m for m in ensemble_fit.members_ if m["selected"])
    assert selected["lambda_max"] is not None
    # the same run from the same perturbed start: equal, not only close (a chaotic map's
    # estimate moves by several per cent with its start)
    assert selected["lambda_max"] == float(lyapunov_spectrum(ensemble_fit)[0])


def test_evaluate_reports_the_fits_lambda_max_whatever_the_data(ensemble_fit, counts):
    """One fit, one λ_max: evaluate's (the report's, the NWB table's) is the selected
    member's, on any stretch of data, while its free run starts on the data."""
    selected = next(m for m in ensemble_fit.members_ if m["selected"])
    x = counts.data[0]
    first = evaluate(ensemble_fit, x[:400], pe_steps=(1,))
    later = evaluate(ensemble_fit, x[-400:], pe_steps=(1,))
    assert first["lambda_max_per_s"] == later["lambda_max_per_s"] == selected["lambda_max"]
    assert first["dstsp"] != later["dstsp"]


def test_evaluates_seed_does_not_reach_the_lyapunov_spectrum(ensemble_fit, counts,
                                                             monkeypatch):
    """The CLI and the benchmarks pass the fit's seed to evaluate for its draws; the λ_max it
    reports stays the one every member's was computed with (the spectrum's own seed), so the
    selected member's λ_max is the fit's on a chaotic map too, where the perturbation of the
    starts moves the estimate."""
    import sys
    ev = sys.modules[evaluate.__module__]   # the module (the package exports the function)
    calls = []
    real = ev.lyapunov_spectrum

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(ev, "lyapunov_spectrum", spy)
    evaluate(ensemble_fit, counts.data[0][:400], pe_steps=(1,), seed=7)
    assert len(calls) == 1 and "seed" not in calls[0]


def test_the_ensembles_of_nearby_seeds_share_no_member():
    seeds = {member_seed(s, k) for s in range(50) for k in range(4)}
    assert len(seeds) == 200 and all(0 <= v < 2 ** 31 for v in seeds)


def test_heldout_likelihood_is_that_of_the_forecasts_from_forced_states(ensemble_fit, counts):
    """Horizon 1: the forecasts are DSR.predict's one-step predictions."""
    from nwb_dsr.analysis import co_bps, poisson_loglik
    from nwb_dsr.protocol import heldout_likelihood
    seg = counts.data[0][:600]
    res = heldout_likelihood(ensemble_fit.latent_model_, ensemble_fit.observation_model_,
                             [seg], horizon=1)
    rates = ensemble_fit.predict(Observations(seg, kind="counts", bin_size=0.01))[0][1:]
    assert res["n_bins"] == 599
    assert res["bits_per_spike"] == pytest.approx(co_bps(rates, seg[1:]), rel=1e-6)
    assert res["loglik"] == pytest.approx(poisson_loglik(rates, seg[1:]) / seg.shape[1],
                                          rel=1e-6)
