"""Spike counts: trial boundaries, Poisson recovery on ground truth, co-smoothing helpers."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from nwb_dsr import DSR, Observations
from nwb_dsr.analysis.evaluate import co_bps, poisson_loglik
from nwb_dsr.datasets import make_lorenz_counts
from nwb_dsr.models import PoissonObservation
from nwb_dsr.training import FORCING_SCHEMES

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "spikes_vs_gpfa.py"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (its helpers are tested here)."""
    spec = importlib.util.spec_from_file_location("spikes_vs_gpfa", _BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def population():
    """30 units x 120 s of 10-ms counts driven by the Lorenz latent."""
    return make_lorenz_counts(n_units=30, duration=120.0, bin_size=0.01, seed=3)


# ----------------------------------------------------------------------------- trials
@pytest.mark.parametrize("mode", ["shooting", "sparse"])
def test_dsr_fit_windows_never_cross_trial_boundaries(monkeypatch, mode):
    # every trial holds one distinct constant count, so a window that crosses a boundary mixes
    # values; the trials are laid out back to back, as one recording cut into trials
    lengths, values = [60, 80, 45, 70], [0, 1, 2, 3]
    trials = [np.full((n, 2), v, dtype=np.int64) for n, v in zip(lengths, values)]
    obs = Observations(trials, kind="counts", bin_size=0.01)
    seen = []
    scheme = FORCING_SCHEMES[mode]  # shooting: the scheme counts are fitted with by default
    orig = scheme.loss

    def record(self, latent, readout, X, F, index):
        # learned forcing states read no forcing targets, and get none
        assert (F is None) == (not scheme.uses_targets)
        seen.append((X.detach().clone(), None if F is None else F.detach().clone()))
        return orig(self, latent, readout, X, F, index)

    monkeypatch.setattr(scheme, "loss", record)
    est = DSR(hidden_dim=8, tau=5, epochs=3, batches_per_epoch=4, batch_size=32, progress=False,
              seed=0, mode=mode)
    est.fit(obs)
    assert seen, "the trainer received no windows"
    X = torch.cat([x for x, _ in seen])     # (n_windows, tau + 1, n_units)
    assert X.shape[1] == est.tau_ + 1
    first = X[:, :1]
    assert torch.all(X == first), "a training window mixes bins of two trials"
    if scheme.uses_targets:
        F = torch.cat([f for _, f in seen])
        assert torch.all(F == F[:, :1]), "a window's forcing targets mix two trials"
    # windows come from every trial long enough (all of them here)
    assert set(first[:, 0, 0].round().int().tolist()) == set(values)


# ----------------------------------------------------------------------------- recovery
def test_poisson_dsr_recovers_the_lorenz_latent(bench, population):
    counts, latent, truth = population
    obs = Observations(counts, kind="counts", bin_size=truth["bin_size"])
    # fixed epochs (not max_time) so that the run is deterministic; about 15 s on one core
    # tau fixed (not "auto") so that the run and the measured figures below stay as they were
    est = DSR(latent_dim=3, smoothing=0.05, tau=20, epochs=15, progress=False, seed=0)
    est.fit(obs)
    assert est.observation_model_.name == "poisson"   # picked for counts
    assert est.history_.loss[-1] < est.history_.loss[0]
    z = est.transform(obs)[0]
    to_truth = bench.latent_map(z, latent)
    # the inferred latent explains the true one (measured 0.874; this comes from the read-out)
    assert bench.r_squared(latent, to_truth.predict(z)) > 0.8
    # the learned dynamics carry it 10 bins ahead (measured 0.848; untrained model: -0.01)
    k = 10
    w = torch.as_tensor(z[:-k])
    with torch.no_grad():
        for _ in range(k):
            w = est.latent_model_.step(w)
    assert bench.r_squared(latent[k:], to_truth.predict(w.numpy())) > 0.6
    # 20-bin-ahead rates beat each unit's mean rate (measured +0.73 nats/bin; untrained -0.58)
    null = np.broadcast_to(counts.mean(0), counts.shape)
    gain = poisson_loglik(est.predict(obs, n_ahead=20)[0], counts) - poisson_loglik(null, counts)
    assert gain > 0.3
    x, Z = est.generate(5000, z0=z[100], return_latent=True)
    assert np.all(np.isfinite(Z)) and np.all(np.isfinite(x))
    assert np.abs(Z).max() < 3 * np.abs(z).max()  # stays within the range of the data's states
    assert x.min() >= 0 and x.max() < 10 * counts.max()


# ----------------------------------------------------------------------------- co-smoothing
def test_co_bps_of_true_and_mean_rates(population):
    counts, _, truth = population
    expected = truth["rates"] * truth["bin_size"]      # expected counts per bin
    held_out = slice(24, 30)
    assert co_bps(expected[:, held_out], counts[:, held_out]) > 0.1
    mean = np.broadcast_to(counts[:, held_out].mean(0), counts[:, held_out].shape)
    assert co_bps(mean, counts[:, held_out]) == pytest.approx(0.0, abs=1e-12)


def test_dsr_cosmooth_rates_with_the_true_read_out(bench, population):
    counts, _, truth = population
    held_in, held_out = bench.split_units(30, 0.2, seed=0)
    est = DSR()
    o = PoissonObservation(30, 3, smoothing=5.0)
    with torch.no_grad():
        o.B.copy_(torch.as_tensor(truth["C"], dtype=torch.float32))
        o.b.copy_(torch.as_tensor(truth["d"], dtype=torch.float32))
    est.observation_model_ = o
    rates = bench.dsr_cosmooth_rates(est, counts[:, held_in], held_in, held_out, smooth=False)
    assert rates.shape == (counts.shape[0], held_out.size)
    assert np.all(rates > 0)
    bps = co_bps(rates, counts[:, held_out])
    best = co_bps(truth["rates"][:, held_out] * truth["bin_size"], counts[:, held_out])
    assert 0.0 < bps < best       # informative, yet below the true rates


def test_dsr_cosmooth_rates_checks_its_inputs(bench):
    est = DSR()
    est.observation_model_ = PoissonObservation(4, 2)
    with pytest.raises(ValueError, match=r"counts_in must be \(n_bins, 3\)"):
        bench.dsr_cosmooth_rates(est, np.zeros((10, 2)), [0, 1, 2], [3])


def test_gpfa_cosmooth_rates_on_known_parameters(bench):
    rng = np.random.default_rng(0)
    n, x_dim, T = 6, 2, 40
    C = rng.normal(size=(n, x_dim)) * 0.3
    params = {"covType": "rbf", "gamma": np.full(x_dim, 0.01), "eps": np.full(x_dim, 1e-3),
              "d": np.full(n, 0.5), "C": C, "R": np.diag(np.full(n, 0.05)),
              "notes": {"learnKernelParams": True, "learnGPNoise": False,
                        "RforceDiagonal": True}}
    t = np.arange(T)
    x = np.stack([np.sin(t / 6.0), np.cos(t / 6.0)])             # (x_dim, T)
    y = C @ x + 0.5                                               # noise-free sqrt counts
    held_in, held_out = np.arange(4), np.arange(4, 6)
    out = bench.gpfa_cosmooth_rates(params, [y[held_in], y[held_in]], held_in, held_out,
                                    floor=1e-3)
    assert set(out) == {"square", "moment"} and len(out["square"]) == 2
    sq, mo = out["square"][0], out["moment"][0]
    assert sq.shape == mo.shape == (T, 2)
    assert np.all(sq >= 1e-3) and np.all(mo >= sq)               # variance only adds
    # with a good latent estimate the square is close to the true sqrt-count squared
    np.testing.assert_allclose(np.sqrt(sq), y[held_out].T, atol=0.1)


# ----------------------------------------------------------------------------- smoothing
def _identity_map(dim: int):
    """A shallow PLRNN whose map is the identity: as a prior, a random walk."""
    from nwb_dsr.models import ShallowPLRNN
    m = ShallowPLRNN(dim, hidden_dim=4)
    with torch.no_grad():
        m.A.fill_(1.0)
        m.W1.zero_()
        m.h1.zero_()
    return m


def _true_readout(truth, n_units: int):
    o = PoissonObservation(n_units, 3, smoothing=5.0)
    with torch.no_grad():
        o.B.copy_(torch.as_tensor(truth["C"], dtype=torch.float32))
        o.b.copy_(torch.as_tensor(truth["d"], dtype=torch.float32))
    return o


def test_smoothing_through_time_beats_bin_by_bin_co_smoothing():
    from nwb_dsr.models.rollout import smooth_states
    # a sparse population (about 0.02 spikes per bin), where a single bin says little
    counts, _, truth = make_lorenz_counts(n_units=30, duration=120.0, bin_size=0.01, seed=3,
                                          mean_rate=2.0)
    held_in, held_out = np.arange(24), np.arange(24, 30)
    o, F = _true_readout(truth, 30), _identity_map(3)   # true read-out, random-walk prior
    y = counts[:, held_in].astype(np.float64)
    with torch.no_grad():
        z_bin = o.invert(torch.as_tensor(o.forcing_target(y)), rows=torch.as_tensor(held_in))
    z_smooth = smooth_states(F, o, [y], rows=held_in)[0]      # weight chosen on held-in units
    target = counts[:, held_out]

    def bps(z):
        with torch.no_grad():
            return co_bps(o.mean(z).numpy()[:, held_out].astype(np.float64), target)
    best = co_bps(truth["rates"][:, held_out] * truth["bin_size"], target)
    assert bps(z_bin) + 0.05 < bps(z_smooth) < best


def test_smoother_weight_is_chosen_by_the_units_the_model_predicts():
    from nwb_dsr.models.rollout import _choose_weight
    # 24 units of the Lorenz latent, and 4 that the read-out maps to the latent while they
    # fire at random (as units of a real population can): whatever the weight, those 4 are
    # predicted worse than by their own means, and they must not choose the weight
    counts, _, truth = make_lorenz_counts(n_units=24, duration=120.0, bin_size=0.01, seed=3,
                                          mean_rate=2.0)
    rng = np.random.default_rng(0)
    rogue = rng.poisson(0.1, size=(len(counts), 4))
    o = PoissonObservation(28, 3, smoothing=5.0)
    with torch.no_grad():
        o.B.copy_(torch.as_tensor(np.vstack([truth["C"], rng.normal(size=(4, 3))]),
                                  dtype=torch.float32))
        o.b.copy_(torch.as_tensor(np.concatenate([truth["d"], np.full(4, np.log(0.1))]),
                                  dtype=torch.float32))
    F = _identity_map(3)
    alone = _choose_weight(F, o, [counts.astype(np.float64)], np.arange(24), 100, True)
    mixed = _choose_weight(F, o, [np.hstack([counts, rogue]).astype(np.float64)],
                           np.arange(28), 100, True)
    assert alone == mixed == 0.1


def test_smooth_states_leaves_the_model_alone_and_checks_its_input(population):
    from nwb_dsr.models.rollout import smooth_states
    counts, _, truth = population
    o, F = _true_readout(truth, 30), _identity_map(3)
    before = [p.detach().clone() for p in F.parameters()] + [o.B.detach().clone()]
    segs = [counts[:300, :5], counts[300:420, :5]]
    out = smooth_states(F, o, segs, rows=[0, 1, 2, 3, 4], max_iter=10)
    assert [z.shape for z in out] == [(300, 3), (120, 3)]
    after = list(F.parameters()) + [o.B]
    assert all(torch.equal(a, b) and a.grad is None and a.requires_grad
               for a, b in zip(after, before))
    with pytest.raises(ValueError, match="weight must be 'auto' or a number >= 0"):
        smooth_states(F, o, segs, rows=range(5), weight=-1)
    with pytest.raises(ValueError, match=r"segment 0 must be \(n_bins, 4\) data, one column"):
        smooth_states(F, o, segs, rows=[0, 1, 2, 3])


def test_dsr_smooth_predicts_held_out_units_of_a_fit():
    counts = make_lorenz_counts(n_units=12, duration=40.0, bin_size=0.01, seed=1)[0]
    est = DSR(latent_dim=3, hidden_dim=16, epochs=4, tau=10, progress=False,
              ensemble=1).fit(Observations(counts, kind="counts", bin_size=0.01))
    z = est.smooth(counts[:, :9], channels=np.arange(9))
    assert len(z) == 1 and z[0].shape == (len(counts), est.latent_model_.state_dim)
    rates = est.rates_from_states(z[0])
    assert rates.shape == (len(counts), 12) and np.all(np.isfinite(rates)) and np.all(rates > 0)
    with pytest.raises(ValueError, match="channels must be distinct indices of the fit's 12"):
        est.smooth(counts[:, :2], channels=[0, 12])
    with pytest.raises(ValueError, match="channels must be distinct indices"):
        est.smooth(counts[:, :2], channels=[1, 1])


def test_smoothing_starts_from_least_squares_where_the_newton_inverse_fails(population,
                                                                            monkeypatch):
    from nwb_dsr.models.observation import ObservationModel
    from nwb_dsr.models.rollout import _start
    counts, _, truth = population
    o = _true_readout(truth, 30)
    y = torch.as_tensor(o.forcing_target(counts[:50, :8].astype(np.float64)))
    rows = torch.arange(8)
    ls = ObservationModel.invert(o, y, rows=rows)
    good = o.invert(y, rows=rows)
    assert torch.equal(_start(o, y, rows), good)

    def nan_rows(y, pinv=None, rows=None):  # a diverged Newton step on some bins
        z = good.clone()
        z[::7] = float("nan")
        return z
    monkeypatch.setattr(o, "invert", nan_rows)
    z = _start(o, y, rows)
    assert torch.equal(z[::7], ls[::7]) and torch.equal(z[1::7], good[1::7])

    def singular(y, pinv=None, rows=None):
        raise torch.linalg.LinAlgError("torch.linalg.solve: The solver failed because the "
                                       "input matrix is singular.")
    monkeypatch.setattr(o, "invert", singular)
    assert torch.equal(_start(o, y, rows), ls)


def test_smoothing_continuous_channels_from_a_subset(population):
    from nwb_dsr.models import GaussianObservation
    from nwb_dsr.models.rollout import smooth_states
    _, latent, truth = population
    rng = np.random.default_rng(0)
    z = (latent - latent.mean(0)) / latent.std(0)
    C = rng.normal(size=(8, 3))
    x = z @ C.T + rng.normal(scale=1.5, size=(len(z), 8))   # noisy signals of the latent
    o = GaussianObservation(8, 3)
    o.fit_init(x)
    with torch.no_grad():   # the true map from the latent to the standardised signals
        o.B.copy_(torch.as_tensor(C / o.scale.numpy()[:, None], dtype=torch.float32))
        o.b.copy_(torch.as_tensor(-o.loc.numpy() / o.scale.numpy(), dtype=torch.float32))
    held_in, held_out = np.arange(6), np.array([6, 7])
    with torch.no_grad():
        y = (x[:, held_in] - o.loc.numpy()[held_in]) / o.scale.numpy()[held_in]
        z_bin = o.invert(torch.as_tensor(y, dtype=torch.float32),
                         rows=torch.as_tensor(held_in))
    z_smooth = smooth_states(_identity_map(3), o, [x[:, held_in]], rows=held_in)[0]
    clean = (z @ C.T)[:, held_out]

    def err(states):
        with torch.no_grad():
            pred = o.mean(states.to(torch.float32)).numpy()[:, held_out]
        return float(np.mean((pred - clean) ** 2))
    assert err(z_smooth) < 0.5 * err(z_bin)
