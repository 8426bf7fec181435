"""The sparse-forcing engine: models, observation layers, trainer, estimator."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from nwb_dsr import DSR, NotFittedError, Observations
from nwb_dsr.models import (LATENT_MODELS, GaussianObservation, LatentModel, PoissonObservation,
                            make_latent_model)
from nwb_dsr.config import OptimizationConfig, RunConfig
from nwb_dsr.training import (FORCING_SCHEMES, GeneralizedTeacherForcing,
                              MultipleShooting, NoForcing, SparseForcing, Trainer,
                              TrainingDivergedWarning, free_run, register_forcing)


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", sorted(LATENT_MODELS))
def test_analytic_jacobian_matches_autograd(name):
    torch.manual_seed(0)
    m = make_latent_model(name, 5, hidden_dim=12, n_bases=3, seed=1)
    z = torch.randn(7, m.state_dim)
    J = m.jacobian(z)
    Ja = torch.func.vmap(torch.func.jacrev(lambda x: m.step(x.unsqueeze(0)).squeeze(0)))(z)
    assert J.shape == (7, m.state_dim, m.state_dim)
    torch.testing.assert_close(J, Ja, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(LATENT_MODELS))
def test_numpy_step_matches_torch_step(name):
    m = make_latent_model(name, 4, hidden_dim=10, seed=2)
    z = torch.randn(1, m.state_dim)
    ref = free_run(m, z, 1)  # may take the NumPy path
    direct = m.step(z).detach()
    torch.testing.assert_close(ref[:, 0], direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(LATENT_MODELS))
@pytest.mark.parametrize("n_steps", [1, 2, 9])
def test_unroll_matches_stepping_under_autograd_in_values_and_gradients(name, n_steps):
    # the fused unroll of the shallow PLRNNs is checked against the plain loop over step()
    m = make_latent_model(name, 3, hidden_dim=16, n_bases=3, seed=1)
    with torch.no_grad():  # move the clipped PLRNN's offsets so both of its kinks are crossed
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    z0 = torch.randn(6, m.state_dim, generator=torch.Generator().manual_seed(0))
    w = torch.randn(6, n_steps, m.state_dim, generator=torch.Generator().manual_seed(1))

    def run(unroll):
        z = z0.clone().requires_grad_(True)
        out = unroll(z)
        (out * w).sum().backward()
        grads = [p.grad.clone() for p in m.parameters()] + [z.grad.clone()]
        m.zero_grad(set_to_none=True)
        return out.detach(), grads

    fast, g_fast = run(lambda z: m.unroll(z, n_steps))
    slow, g_slow = run(lambda z: LatentModel.unroll(m, z, n_steps))
    assert fast.shape == (6, n_steps, m.state_dim)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_plrnn_w_has_no_self_connection():
    m = make_latent_model("plrnn", 3, seed=0)
    with torch.no_grad():
        m.W.fill_(1.0); m.A.zero_(); m.h.zero_()
    z = torch.tensor([[1.0, 0.0, 0.0]])
    assert torch.equal(m.step(z), torch.tensor([[0.0, 1.0, 1.0]]))


# ----------------------------------------------------------------------------- observation
@pytest.mark.parametrize("N,M", [(3, 3), (3, 5), (4, 4)])
def test_pseudo_inverse_recovers_data_for_full_rank_B(N, M):
    obs = GaussianObservation(N, M)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        obs.B.copy_(torch.randn(N, M, generator=g)); obs.b.copy_(torch.randn(N, generator=g))
    y = torch.randn(10, N, generator=g)
    torch.testing.assert_close(obs.linear(obs.invert(y)), y, atol=1e-4, rtol=1e-4)


def test_pseudo_inverse_is_least_squares_when_fewer_latents():
    obs = GaussianObservation(6, 2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        obs.B.copy_(torch.randn(6, 2, generator=g))
    z = torch.randn(5, 2, generator=g)
    torch.testing.assert_close(obs.invert(obs.linear(z)), z, atol=1e-5, rtol=1e-5)
    B = obs.B.detach()
    torch.testing.assert_close(obs.pinv(), torch.linalg.solve(B.T @ B, B.T), atol=1e-5, rtol=1e-5)


def test_gaussian_layer_standardises_and_returns_data_units():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(1000, 2))
    obs = GaussianObservation(2, 2)
    obs.fit_init(x)
    y = torch.as_tensor(obs.forcing_target(x))
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.std()) - 1) < 1e-2
    np.testing.assert_allclose(obs.mean(obs.invert(y)).detach().numpy(), x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("link", ["exp", "softplus"])
def test_poisson_layer_inverts_smoothed_counts(link):
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(400, 4))
    obs = PoissonObservation(4, 4, link=link, smoothing=0.0)
    obs.fit_init(counts)
    z = obs.invert(torch.as_tensor(obs.forcing_target(counts)))
    rates = obs.mean(z).detach().numpy()
    np.testing.assert_allclose(rates, np.maximum(counts, obs.floor), rtol=1e-3, atol=1e-3)


def test_poisson_inverse_is_the_maximum_likelihood_latent_of_smoothed_counts():
    from nwb_dsr.datasets import make_lorenz_population
    pop = make_lorenz_population(n_units=40, duration=60.0, n_lfp_channels=0,
                                 spike_times=False, seed=0)
    obs = PoissonObservation(40, 3, smoothing=5.0)
    with torch.no_grad():
        obs.B.copy_(torch.as_tensor(pop.C)); obs.b.copy_(torch.as_tensor(pop.d))
    y = torch.as_tensor(obs.forcing_target(pop.counts))
    z = obs.invert(y).detach().double()
    # the gradient of the log-likelihood of the smoothed counts s (with the layer's small
    # ridge on z) vanishes at ẑ
    s = np.maximum(gaussian_filter1d(pop.counts.astype(float), 5.0, axis=0, mode="nearest"),
                   obs.floor)
    ridge = 1e-4 * (pop.C ** 2).sum() / 3
    grad = (s - np.exp(z.numpy() @ pop.C.T + pop.d)) @ pop.C - ridge * z.numpy()
    assert np.abs(grad).max() < 1e-3
    # closer to the true latent than least squares on the log of the smoothed counts
    obs.n_newton = 0  # the least-squares start B⁺(y − b)
    ls = obs.invert(y).detach().double()
    obs.n_newton = 3
    err = lambda a: float(np.mean((a.numpy() - pop.latent) ** 2))  # noqa: E731
    assert err(z) < 0.7 * err(ls)
    # held-in rows only: the same as a layer made of those rows
    rows = np.arange(0, 40, 2)
    sub = PoissonObservation(20, 3, smoothing=5.0)
    with torch.no_grad():
        sub.B.copy_(obs.B[rows]); sub.b.copy_(obs.b[rows])
    torch.testing.assert_close(obs.invert(y[:, rows], rows=torch.as_tensor(rows)),
                               sub.invert(y[:, rows]))


def test_poisson_loss_is_the_negative_log_likelihood_up_to_a_constant():
    obs = PoissonObservation(1, 1)
    with torch.no_grad():
        obs.B.fill_(1.0); obs.b.zero_()
    z = torch.tensor([[np.log(2.0)]], dtype=torch.float32)
    x = torch.tensor([[3.0]])
    nll = -torch.distributions.Poisson(torch.tensor(2.0)).log_prob(torch.tensor(3.0)) - \
        torch.lgamma(torch.tensor(4.0))
    torch.testing.assert_close(obs.loss(z, x), nll, atol=1e-5, rtol=1e-5)


def test_poisson_loss_of_the_exp_link_matches_the_autograd_expression_in_value_and_gradient():
    # the fused loss against mean(exp(y) - x y), y = min(B z + b, bound), also where some
    # rates reach the bound (there the gradient is zero, as through the clamp)
    torch.manual_seed(0)
    obs = PoissonObservation(7, 3)
    with torch.no_grad():
        obs.B.copy_(torch.randn(7, 3)); obs.b.copy_(torch.randn(7))
    for scale in (1.0, 8.0):  # 8: many linear predictors beyond max_log_rate
        z = (scale * torch.randn(4, 6, 3)).requires_grad_()
        x = torch.poisson(torch.full((4, 6, 7), 2.0))
        loss = obs.loss(z, x)
        grads = torch.autograd.grad(loss, (z, obs.B, obs.b))
        zr = z.detach().requires_grad_()
        y = (zr @ obs.B.T + obs.b).clamp(max=obs.max_log_rate)
        ref = (torch.exp(y) - x * y).mean()
        ref_grads = torch.autograd.grad(ref, (zr, obs.B, obs.b))
        if scale > 1:
            assert bool((y >= obs.max_log_rate).any())
        torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_simulated_forcing_target_puts_model_output_through_the_data_path():
    obs = PoissonObservation(3, 1, smoothing=3.0)
    with torch.no_grad():
        obs.B.zero_(); obs.b.copy_(torch.log(torch.tensor([0.5, 2.0, 8.0])))
    z = torch.zeros(20000, 1)
    y = obs.simulated_forcing_target(z, np.random.default_rng(0))
    counts = np.random.default_rng(0).poisson([0.5, 2.0, 8.0], size=(20000, 3))
    ref = obs.forcing_target(counts)
    # the same processing as data: matching mean and spread, unlike the noise-free B z + b
    np.testing.assert_allclose(y.mean(0), ref.mean(0), atol=0.02)
    np.testing.assert_allclose(y.std(0), ref.std(0), rtol=0.05)
    assert np.all(y.std(0) > 0.05)
    g = GaussianObservation(2, 2)
    zz = torch.randn(10, 2)
    np.testing.assert_allclose(g.simulated_forcing_target(zz, np.random.default_rng(0)),
                               g.linear(zz).detach().numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------- forcing
class Counter(LatentModel):
    """z' = z + increments (default 1): predictions reveal exactly when the state was reset."""

    name = "counter"

    def __init__(self, increments=(1.0,)):
        super().__init__(len(increments))
        self.increments = torch.tensor(increments)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def step(self, z):
        return z + self.increments + 0.0 * self.dummy


def _identity_layer():
    obs = GaussianObservation(1, 1)
    with torch.no_grad():
        obs.B.fill_(1.0); obs.b.zero_()
    return obs


def _windows(values, n_channels=1):
    """F of one window (1, L+1, n_channels) and its bin positions (1, L+1)."""
    F = torch.as_tensor(values, dtype=torch.float32).reshape(1, -1, n_channels)
    return F, torch.arange(F.shape[1])[None]


def _trainer(latent, readout, scheme, **opt):
    return Trainer(latent, readout, scheme, OptimizationConfig(**{"epochs": 1, **opt}),
                   run=RunConfig(progress=False))


def test_the_fused_adam_and_the_batch_gather_give_the_plain_results():
    from nwb_dsr.training.forcing import gather_rows
    from nwb_dsr.training.trainer import make_optimizer
    X = torch.randn(50, 4)
    W = torch.tensor([[0, 1, 2], [7, 8, 9], [40, 41, 42]])
    assert torch.equal(gather_rows(X, W), X[W])
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    fused, plain = make_optimizer("adam", a, 0.01), torch.optim.Adam(b, lr=0.01)
    assert fused.defaults["fused"] is True  # the CPU has the fused kernel
    for _ in range(20):
        for params, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            (params[0].sin().sum() + (params[1] ** 2).sum()).backward()
            opt.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert isinstance(make_optimizer("radam", b, 0.01), torch.optim.RAdam)


def test_sparse_forcing_resets_at_exactly_every_tau_steps():
    scheme = SparseForcing(tau=3)
    F, idx = _windows(100.0 * np.arange(11))
    pred = scheme.rollout(Counter(), _identity_layer(), F, idx)[0, :, 0].tolist()
    # forced at t = 0, 3, 6, 9; the prediction at a forced step is made before the reset
    assert pred == [1, 2, 3, 301, 302, 303, 601, 602, 603, 901]
    assert scheme.forcing_steps(10) == [0, 3, 6, 9]
    assert scheme.window == 3 and scheme.stride == 1


def test_baseline_forces_only_the_initial_state():
    scheme = NoForcing()
    F, idx = _windows(100.0 * np.arange(6))
    assert scheme.rollout(Counter(), _identity_layer(), F, idx)[0, :, 0].tolist() == [1, 2, 3, 4, 5]
    assert scheme.forcing_steps(5) == [0]
    assert _trainer(Counter(), _identity_layer(), scheme).grad_clip == 10.0
    assert scheme.window == 200


def test_generalized_teacher_forcing_mixes_every_step():
    scheme = GeneralizedTeacherForcing(alpha=0.5)
    F, idx = _windows([0.0, 10.0, 20.0])
    # z1 = 1 -> 0.5*1 + 0.5*10 = 5.5; z2 = 6.5
    assert scheme.rollout(Counter(), _identity_layer(), F, idx)[0, :, 0].tolist() == [1.0, 6.5]
    assert GeneralizedTeacherForcing().alpha == 0.1


def test_sparse_forcing_with_strength_below_one_mixes_at_resets_only():
    F, idx = _windows(100.0 * np.arange(5))
    pred = SparseForcing(tau=2, alpha=0.5).rollout(Counter(), _identity_layer(), F, idx)
    # z2 = 2 -> 2 + 0.5*(200 - 2) = 101, so z3 = 102 and z4 = 103 (no mixing at odd steps)
    assert pred[0, :, 0].tolist() == [1.0, 2.0, 102.0, 103.0]


def _shooting(tau, states, **kw):
    scheme = MultipleShooting(tau=tau, **kw)
    scheme.states = torch.nn.Parameter(torch.as_tensor(states, dtype=torch.float32))
    return scheme


def test_shooting_forces_with_the_learned_states():
    F, idx = _windows(100.0 * np.arange(5))
    scheme = _shooting(2, -F[0])
    # the learned states, not the data, are what the resets use
    assert scheme.rollout(Counter(), _identity_layer(), F, idx)[0, :, 0].tolist() == \
        [1.0, 2.0, -199.0, -198.0]


def test_shooting_sets_the_read_out_latents_and_carries_the_rest_of_the_state():
    obs = GaussianObservation(1, 2)  # M = 2 > N = 1: learned states still set both latents
    with torch.no_grad():
        obs.B.copy_(torch.tensor([[1.0, 0.0]])); obs.b.zero_()
    S = torch.stack([100.0 * torch.arange(5.0), -100.0 * torch.arange(5.0)], -1)
    F, idx = _windows(np.zeros(5))
    pred = _shooting(2, S).rollout(Counter((1.0, 10.0)), obs, F, idx)[0].tolist()
    assert pred == [[1.0, 10.0], [2.0, 20.0], [201.0, -190.0], [202.0, -180.0]]
    obs1 = _identity_layer()  # state of 2 units, read-out of 1: the second one carries on
    pred = _shooting(2, S[:, :1]).rollout(Counter((1.0, 10.0)), obs1, F, idx)[0].tolist()
    assert pred == [[1.0, 10.0], [2.0, 20.0], [201.0, 30.0], [202.0, 40.0]]


def test_shooting_windows_start_on_the_grid_of_forcing_states():
    segs = [np.zeros((30, 1)), np.ones((41, 1))]
    obs = GaussianObservation(1, 1)
    obs.fit_init(np.concatenate(segs))
    tr = _trainer(Counter(), obs, MultipleShooting(tau=5))
    data = tr._windows(segs, "training")
    assert data.starts.tolist() == [0, 5, 10, 15, 20] + [30 + k for k in range(0, 36, 5)]


def test_shooting_loss_reads_out_the_first_state_and_penalises_gaps():
    scheme = _shooting(2, torch.tensor([0.0, 5.0, 10.0])[:, None], continuity=0.5)
    F, idx = _windows(np.zeros(3))
    # read-outs 0 (the state at the start), 1, 2 against zeros: MSE 5/3; the prediction
    # arriving at the next grid point is 2, its state 10: gap² 64, times 0.5
    loss = scheme.loss(Counter(), _identity_layer(), torch.zeros(1, 3, 1), F, idx)
    torch.testing.assert_close(loss, torch.tensor(5.0 / 3.0 + 32.0))


def test_shooting_penalises_the_gap_at_every_grid_point_a_window_reaches():
    # tau 2, a window of 5 steps: predictions arrive at the grid points 2 and 4 from the
    # states 0 and 10; predicted 2 and 12 against the states 10 and 20: gaps 8 and 8
    scheme = _shooting(2, torch.tensor([0.0, 0.0, 10.0, 0.0, 20.0, 0.0])[:, None],
                       continuity=1.0)
    F, idx = _windows(np.zeros(6))
    loss = scheme.loss(Counter(), _identity_layer(), torch.zeros(1, 6, 1), F, idx)
    # read-outs 0, 1, 2 (reset to 10), 11, 12 (reset to 20), 21 against zeros
    fit = (0 + 1 + 4 + 121 + 144 + 441) / 6.0
    torch.testing.assert_close(loss, torch.tensor(fit + 64.0))


def test_shooting_recovers_states_closer_to_the_truth_than_the_noisy_data():
    # a noisy circle: the learned forcing states smooth the noise by the model's own flow
    rng = np.random.default_rng(0)
    t = np.arange(2000) * 0.1
    truth = np.stack([np.sin(t), np.cos(t)], 1)
    x = truth + rng.normal(0, 0.3, truth.shape)
    obs = GaussianObservation(2, 2)
    obs.fit_init(x)
    torch.manual_seed(0)
    scheme = MultipleShooting(tau=10)
    tr = _trainer(make_latent_model("shallow_plrnn", 2, hidden_dim=16, seed=0), obs, scheme,
                  epochs=60, batches_per_epoch=15, batch_size=64, validation_fraction=0.0)
    tr.fit(Observations(x, bin_size=0.1))
    grid = np.arange(0, 2000 - 10, 10)
    with torch.no_grad():
        learned = obs.mean(scheme.states[grid]).numpy()
    err_data = np.mean((x[grid] - truth[grid]) ** 2)
    err_learned = np.mean((learned - truth[grid]) ** 2)
    assert err_learned < 0.5 * err_data


def test_shooting_is_the_default_for_counts_only(lorenz_series):
    kw = dict(hidden_dim=8, tau=5, epochs=1, batches_per_epoch=2, batch_size=8, progress=False)
    counts = np.random.default_rng(0).poisson(1.0, size=(400, 4))
    est = DSR(**kw).fit(Observations(counts, kind="counts", bin_size=0.01))
    assert est.resolved_config_.forcing.mode == "shooting"
    assert est.forcing_states_.shape == (360, 3)  # training bins (validation held back) × M
    assert DSR(**kw).fit(lorenz_series[:400]).resolved_config_.forcing.mode == "sparse"
    assert DSR(mode="shooting", **kw).fit(lorenz_series[:400]).forcing_states_ is not None


def test_a_new_forcing_scheme_plugs_in_without_touching_the_trainer(lorenz_series):
    calls = []

    @register_forcing
    class HalfwayForcing(SparseForcing):
        """Forces only at the middle of each window (a scheme defined by a user)."""

        name = "halfway_test"

        def forcing_steps(self, L):
            calls.append(L)
            return [0, L // 2]

    try:
        F, idx = _windows(100.0 * np.arange(7))
        pred = HalfwayForcing(tau=6).rollout(Counter(), _identity_layer(), F, idx)
        assert pred[0, :, 0].tolist() == [1, 2, 3, 301, 302, 303]
        est = DSR(mode="halfway_test", tau=6, hidden_dim=8, epochs=2, batches_per_epoch=3,
                  progress=False).fit(lorenz_series[:600])
        assert est.resolved_config_.forcing.mode == "halfway_test" and calls
        assert np.all(np.isfinite(est.history_.loss))
    finally:
        FORCING_SCHEMES.pop("halfway_test")


def test_forcing_moves_only_the_part_of_the_state_the_read_out_sees():
    # M = 2 latents, N = 1 channel reading the first: the second latent is not determined by
    # the data, so a reset keeps the model's value there
    obs = GaussianObservation(1, 2)
    with torch.no_grad():
        obs.B.copy_(torch.tensor([[1.0, 0.0]])); obs.b.zero_()
    F, idx = _windows(100.0 * np.arange(5))
    pred = SparseForcing(tau=2).rollout(Counter((1.0, 10.0)), obs, F, idx)[0].tolist()
    assert pred == [[1.0, 10.0], [2.0, 20.0], [201.0, 30.0], [202.0, 40.0]]


def test_lstm_read_out_sees_the_hidden_state_only(lorenz_series):
    est = DSR(model="lstm", latent_dim=3, tau=5, epochs=1, batches_per_epoch=2,
              progress=False).fit(lorenz_series[:400])
    assert est.latent_model_.state_dim == 6 and est.observation_model_.latent_dim == 3
    assert est.transform(lorenz_series[:10])[0].shape == (10, 6)


def test_windows_never_cross_segment_boundaries():
    segs = [np.full((30, 1), 1.0), np.full((40, 1), 2.0), np.full((25, 1), 3.0)]
    obs = GaussianObservation(1, 1)
    obs.fit_init(np.concatenate(segs))
    tr = _trainer(Counter(), obs, SparseForcing(tau=5, window=10))
    data = tr._windows(segs, "training")
    X = data.X[:, 0]
    for s in data.starts.tolist():
        w = X[s:s + 11]
        assert torch.all(w == w[0]), f"window starting at {s} mixes segments"
    assert data.starts.numel() == (30 - 10) + (40 - 10) + (25 - 10)


# ----------------------------------------------------------------------------- training
def test_loss_falls_on_a_short_chaotic_series(lorenz_series):
    x = lorenz_series[:3000]
    est = DSR(hidden_dim=32, tau=10, epochs=15, batches_per_epoch=20, progress=False, seed=0,
              validation_fraction=0.0)
    est.fit(x, bin_size=0.01)
    loss = est.history_.loss
    assert loss[-1] < 0.2 * loss[0]


def test_same_seed_gives_the_same_parameters(lorenz_series):
    kw = dict(hidden_dim=16, tau=10, epochs=3, batches_per_epoch=5, progress=False, seed=3)
    a = DSR(**kw).fit(lorenz_series[:2000]).to_state()[1]
    b = DSR(**kw).fit(lorenz_series[:2000]).to_state()[1]
    c = DSR(**{**kw, "seed": 4}).fit(lorenz_series[:2000]).to_state()[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def _fitted_latent(series, **kw):
    est = DSR(**{**dict(hidden_dim=8, tau=10, epochs=1, batch_size=16, progress=False,
                        validation_fraction=0.0, seed=5), **kw}).fit(series)
    return {k: v.clone() for k, v in est.latent_model_.state_dict().items()}


def test_weight_averaging_is_the_moving_average_of_the_raw_steps(lorenz_series):
    # the raw iterates after 0..3 gradient steps (the same seed draws the same batches), and
    # the fit with averaging: its model is the exponential moving average of those iterates
    x, d = lorenz_series[:1500], 0.7
    raw = [_fitted_latent(x, batches_per_epoch=1, lr=1e-12, ema_decay=0)]  # the initial state
    raw += [_fitted_latent(x, batches_per_epoch=k, ema_decay=0) for k in (1, 2, 3)]
    averaged = _fitted_latent(x, batches_per_epoch=3, ema_decay=d)
    for name, p0 in raw[0].items():
        expect = p0.clone()
        for n, p in enumerate(raw[1:]):
            dn = min(d, (1 + n) / (10 + n))
            expect = dn * expect + (1 - dn) * p[name]
        torch.testing.assert_close(averaged[name], expect, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(averaged[n], raw[-1][n]) for n in averaged)


@pytest.mark.filterwarnings("ignore::nwb_dsr.collapse.CollapseWarning")  # a 20-step fit
def test_weight_averaging_leaves_the_gradient_steps_alone(lorenz_series):
    kw = dict(hidden_dim=8, tau=10, epochs=4, batches_per_epoch=5, eval_every=1, patience=None,
              progress=False, n_final_checks=1, restarts=0)
    seen = {0: [], 0.9: []}

    def fit(decay):
        def callback(trainer, epoch, seconds):  # sees what validation saw
            seen[decay].append(trainer.latent.W1.detach().clone())
        return DSR(**kw, ema_decay=decay).fit(lorenz_series[:2000], callback=callback)

    plain, averaged = fit(0), fit(0.9)
    assert plain.history_.loss == averaged.history_.loss  # the same raw parameters' losses
    assert all(not torch.equal(a, b) for a, b in zip(seen[0], seen[0.9]))
    # the fitted model is one of the averaged checkpoints
    assert any(torch.equal(averaged.latent_model_.W1, w) for w in seen[0.9])


@pytest.mark.filterwarnings("ignore::nwb_dsr.collapse.CollapseWarning")  # a short fit
def test_the_callback_sees_the_epoch_that_stops_training_early(lorenz_series):
    epochs = []
    est = DSR(hidden_dim=8, tau=10, epochs=40, batches_per_epoch=2, eval_every=1, patience=1,
              progress=False, n_final_checks=1, restarts=0, ensemble=1).fit(
        lorenz_series[:2000], callback=lambda trainer, epoch, seconds: epochs.append(epoch))
    assert est.history_.stopped == "early_stop" and est.history_.epochs < 40
    assert epochs == list(range(1, est.history_.epochs + 1))


def test_divergence_keeps_the_last_good_parameters(lorenz_series, monkeypatch):
    est = DSR(hidden_dim=8, tau=5, epochs=6, batches_per_epoch=3, progress=False,
              validation_fraction=0.0)
    calls = {"n": 0}
    orig = SparseForcing.loss
    snapshots = []

    def flaky(self, latent, readout, X, F, index):
        calls["n"] += 1
        if calls["n"] == 3 * 3 + 1:  # first batch of epoch 4
            snapshots.append({k: v.clone() for k, v in latent.state_dict().items()})
            return orig(self, latent, readout, X, F, index) * float("nan")
        return orig(self, latent, readout, X, F, index)

    monkeypatch.setattr(SparseForcing, "loss", flaky)
    with pytest.warns(TrainingDivergedWarning, match="last good epoch"):
        est.fit(lorenz_series[:1000])
    assert est.history_.stopped == "diverged" and est.history_.epochs == 3
    for k, v in est.latent_model_.state_dict().items():
        torch.testing.assert_close(v, snapshots[0][k])


def test_validation_keeps_the_best_model(lorenz_series):
    est = DSR(hidden_dim=16, tau=10, epochs=20, batches_per_epoch=20, eval_every=4,
              progress=False, validation_fraction=0.2, n_final_checks=1).fit(lorenz_series[:3000])
    h = est.history_
    assert len(h.val_score) == 5 and np.isfinite(min(h.val_score))
    assert h.best_epoch == h.val_epochs[int(np.argmin(h.val_score))]


def _recording_validation(monkeypatch, scores):
    """Trainer.validate replacement: validation k scores scores[k] (no collapse) and keeps a
    copy of the parameters it saw; final checks are recorded in order."""
    from nwb_dsr.protocol import ProtocolResult
    seen, checked = [], []

    def fake(self, segments):
        seen.append({k: v.clone() for k, v in self.latent.state_dict().items()})
        s = scores[len(seen) - 1]
        return ProtocolResult(s, s / 10, s, None, None, None, None)

    def never(self, segments, probe_segments=None):
        checked.append({k: v.clone() for k, v in self.latent.state_dict().items()})
        raise AssertionError("no final check with n_final_checks=1")

    monkeypatch.setattr(Trainer, "validate", fake)
    monkeypatch.setattr(Trainer, "final_check", never)
    return seen, checked


FINAL_KW = dict(hidden_dim=8, tau=5, epochs=5, batches_per_epoch=2, batch_size=8, eval_every=1,
                patience=None, progress=False, restarts=0)


def test_one_final_check_keeps_the_best_validation_checkpoint_bitwise(lorenz_series,
                                                                      monkeypatch):
    # the earlier of two equal best scores, as a single best checkpoint always was
    seen, _ = _recording_validation(monkeypatch, [5.0, 1.0, 3.0, 1.0, 4.0])
    est = DSR(**FINAL_KW, n_final_checks=1).fit(lorenz_series[:800])
    h = est.history_
    assert (h.best_epoch, h.best_score) == (2, 1.0) and h.final_epochs == []
    for k, v in est.latent_model_.state_dict().items():
        assert torch.equal(v, seen[1][k])
    assert est.members_[0]["score"] == 1.0 and est.members_[0]["D_stsp"] == 1.0
    # it was probed for runaways from states of the training data: counted, not penalised
    assert h.probes_runaway is not None
    assert est.members_[0]["probes_runaway"] == h.probes_runaway


def test_final_check_picks_among_the_best_checkpoints_and_records_the_choice(lorenz_series,
                                                                             monkeypatch):
    from nwb_dsr.protocol import ProtocolResult
    from nwb_dsr.training import TrainingHistory
    seen, _ = _recording_validation(monkeypatch, [5.0, 1.0, 3.0, 2.0, 4.0])
    # epoch 2 (validation 1.0) scores worse in the longer runs, but less than twice as badly:
    # it is not drifting
    final = [(1.8, None), (0.5, None), (1000.2, "fixed_point")]
    checked = []

    def check(self, segments, probe_segments=None):  # called on the kept checkpoints, best validation first
        checked.append({k: v.clone() for k, v in self.latent.state_dict().items()})
        s, reason = final[len(checked) - 1]
        return ProtocolResult(s / 2, s / 10, s, reason, None, None, None)

    monkeypatch.setattr(Trainer, "final_check", check)
    est = DSR(**FINAL_KW, n_final_checks=3).fit(lorenz_series[:800])
    h = est.history_
    assert h.final_epochs == [2, 4, 3]
    for snapshot, epoch in zip(checked, h.final_epochs):
        assert all(torch.equal(v, seen[epoch - 1][k]) for k, v in snapshot.items())
    assert h.final_score == [1.8, 0.5, 1000.2] and h.final_dstsp == [0.9, 0.25, 500.1]
    assert h.final_collapse == [None, None, "fixed_point"]
    # the best of the final check is the model, and the history's best refers to it
    assert (h.best_epoch, h.best_score, h.collapse) == (4, 0.5, None)
    for k, v in est.latent_model_.state_dict().items():
        assert torch.equal(v, seen[3][k])
    assert est.members_[0]["score"] == 0.5 and est.members_[0]["D_stsp"] == 0.25
    # the record survives to_dict / from_dict and saving the estimator
    assert TrainingHistory.from_dict(h.to_dict()) == h
    assert DSR.from_state(*est.to_state()).history_.final_epochs == [2, 4, 3]


def test_spectral_selection_ranks_the_final_check_by_its_rank(lorenz_series, monkeypatch):
    from nwb_dsr.protocol import ProtocolResult
    _recording_validation(monkeypatch, [5.0, 1.0, 3.0, 2.0, 4.0])
    # (score, spectral rank, rhythm error): epoch 2 has the best score, epoch 4 the best rank;
    # epoch 3 scores far worse than in validation (drifting), which adds to its rank too
    final = [(1.0, 120.0, 0.4), (1.5, 30.0, 0.05), (9.0, 10.0, 0.0)]
    calls = []

    def check(self, segments, probe_segments=None):
        calls.append(self.final_protocol.selection)
        s, r, e = final[len(calls) - 1]
        return ProtocolResult(s / 2, s / 10, s, None, None, None, None,
                              rhythm_error=e, spectral_rank=r)

    monkeypatch.setattr(Trainer, "final_check", check)
    est = DSR(**FINAL_KW, n_final_checks=3, selection="spectrum").fit(lorenz_series[:800])
    h = est.history_
    assert calls == ["spectrum"] * 3 and h.final_epochs == [2, 4, 3]
    assert h.final_rank == [120.0, 30.0, 1010.0] and h.final_rhythm_error == [0.4, 0.05, 0.0]
    assert h.final_collapse == [None, None, "drifting"]
    assert h.final_score == [1.0, 1.5, 1009.0]
    assert (h.best_epoch, h.best_score) == (4, 30.0) and est.members_[0]["score"] == 30.0
    assert est.resolved_config_.evaluation.selection == "spectrum"


def test_spectral_selection_judges_the_spectrum_against_the_training_data(lorenz_series,
                                                                           monkeypatch):
    from nwb_dsr.protocol import EvaluationProtocol, ProtocolResult
    seen = []
    # the first checkpoint checked has the better spectrum but misses the rhythm
    given = [(1.0, 0.1, 0.5), (2.0, 0.2, 0.05)]

    def spy(self, latent, readout, segments):
        seen.append((self.n_steps, self.n_starts, self.n_probes, [len(s) for s in segments]))
        ds, dh, e = given[len(seen) - 1]
        return ProtocolResult(ds, dh, ds + 4 * dh, None, None, None, None, rhythm_error=e)

    final_check = Trainer.final_check
    _recording_validation(monkeypatch, [2.0, 1.0])   # two validations that did not collapse
    monkeypatch.setattr(Trainer, "final_check", final_check)
    monkeypatch.setattr(EvaluationProtocol, "spectral_check", spy)
    plain = ProtocolResult(1.0, 0.1, 1.4, None, None, None, None)   # the final runs
    monkeypatch.setattr(EvaluationProtocol, "evaluate", lambda *a, **k: plain)
    est = DSR(**{**FINAL_KW, "epochs": 2}, n_val_steps=300, n_val_starts=2, n_final_steps=600,
              n_final_checks=2, selection="spectrum").fit(lorenz_series[:1000])
    h = est.history_
    # against the 900 training bins, after the final runs on the 100 held back
    assert [x[3] for x in seen] == [[900], [900]] and seen[0][1] == 2
    assert h.final_rhythm_error == [0.5, 0.05]
    assert h.final_rank == pytest.approx([1.0 + 10.0 + 100.0, 2.0 + 20.0])
    assert h.final_score == [1.4, 1.4] and h.final_collapse == [None, None]
    assert h.best_epoch == h.final_epochs[1] and h.best_score == pytest.approx(22.0)


def test_spectral_selection_of_collapsed_checkpoints(lorenz_series, monkeypatch):
    from nwb_dsr.protocol import EvaluationProtocol, ProtocolResult
    checked = []
    final_check = Trainer.final_check
    _recording_validation(monkeypatch, [2.0, 1.0])
    monkeypatch.setattr(Trainer, "final_check", final_check)
    monkeypatch.setattr(EvaluationProtocol, "spectral_check", lambda self, *a: checked.append(1)
                        or ProtocolResult(2.0, 0.2, 2.8, None, None, None, None,
                                          rhythm_error=0.05))
    # epoch 2: its runs on the held-back data become non-finite; epoch 1: those runs are fine
    # but a probe from a state of the training data becomes non-finite
    results = iter([ProtocolResult(math.nan, math.nan, math.inf, "non_finite", None, None, None),
                    ProtocolResult(1.0, 0.1, 1001.4, "non_finite", None, None, None, 33, 1)])
    monkeypatch.setattr(EvaluationProtocol, "evaluate", lambda *a, **k: next(results))
    with pytest.warns(Warning):
        est = DSR(**{**FINAL_KW, "epochs": 2}, n_val_steps=300, n_final_steps=600,
                  n_final_checks=2, selection="spectrum").fit(lorenz_series[:1000])
    h = est.history_
    # the first ranks last without a spectral check; the second by the spectrum, collapsed
    assert len(checked) == 1 and h.final_epochs == [2, 1]
    assert h.final_rank == [math.inf, pytest.approx(2.0 + 20.0 + 1000.0)]
    assert h.final_collapse == ["non_finite", "non_finite"] and h.best_epoch == 1


def test_spectral_selection_judges_collapse_on_the_held_back_runs_and_probes(lorenz_series,
                                                                              monkeypatch):
    from nwb_dsr.protocol import EvaluationProtocol, ProtocolResult
    final_check = Trainer.final_check
    _recording_validation(monkeypatch, [2.0, 1.0])
    monkeypatch.setattr(Trainer, "final_check", final_check)
    # one of the spectral check's runs came to rest: that moves its D_H and rhythm error only
    monkeypatch.setattr(EvaluationProtocol, "spectral_check", lambda self, *a: ProtocolResult(
        2.0, 0.2, 2.8, "damped", None, None, None, rhythm_error=0.05))
    # the final runs on the held-back data: the first checked is fine, the second drifts
    results = iter([ProtocolResult(1.0, 0.1, 1.4, None, None, None, None),
                    ProtocolResult(1.0, 0.1, 1001.4, "drifting", None, None, None)])
    monkeypatch.setattr(EvaluationProtocol, "evaluate", lambda *a, **k: next(results))
    est = DSR(**{**FINAL_KW, "epochs": 2}, n_val_steps=300, n_final_steps=600,
              n_final_checks=2, selection="spectrum").fit(lorenz_series[:1000])
    h = est.history_
    assert h.final_collapse == [None, "drifting"]
    assert h.final_rank == [pytest.approx(22.0), pytest.approx(1022.0)]
    assert h.best_epoch == h.final_epochs[0]


def test_spectral_selection_counts_non_finite_spectral_runs_as_a_collapse(lorenz_series,
                                                                          monkeypatch):
    from nwb_dsr.protocol import EvaluationProtocol, ProtocolResult
    final_check = Trainer.final_check
    _recording_validation(monkeypatch, [2.0, 1.0])
    monkeypatch.setattr(Trainer, "final_check", final_check)
    spectral = iter([ProtocolResult(math.nan, math.nan, math.inf, "non_finite", None, None,
                                    None),
                     ProtocolResult(2.0, 0.2, 2.8, None, None, None, None, rhythm_error=0.05)])
    monkeypatch.setattr(EvaluationProtocol, "spectral_check", lambda self, *a: next(spectral))
    plain = ProtocolResult(1.0, 0.1, 1.4, None, None, None, None)   # the final runs
    monkeypatch.setattr(EvaluationProtocol, "evaluate", lambda *a, **k: plain)
    est = DSR(**{**FINAL_KW, "epochs": 2}, n_val_steps=300, n_final_steps=600,
              n_final_checks=2, selection="spectrum").fit(lorenz_series[:1000])
    h = est.history_
    # the first checked ran away from a state of the training data: collapsed, ranked last
    assert h.final_collapse == ["non_finite", None]
    assert h.final_rank == [math.inf, pytest.approx(22.0)]
    assert h.final_score == [pytest.approx(1001.4), pytest.approx(1.4)]
    assert h.best_epoch == h.final_epochs[1]


def test_selection_auto_is_spectral_for_field_potentials_only(lorenz_series):
    from nwb_dsr import Observations
    from nwb_dsr.config import DSRConfig
    from nwb_dsr.policies import resolve
    plain = Observations(lorenz_series[:800], bin_size=0.01)
    lfp = Observations(lorenz_series[:800], bin_size=0.01,
                       provenance={"preprocess": {"enabled": True}})
    counts = Observations(np.random.default_rng(0).poisson(2.0, (800, 5)), kind="counts",
                          bin_size=0.01)
    pick = lambda obs, **kw: resolve(DSRConfig.from_params(tau=5, **kw),  # noqa: E731
                                     obs).evaluation.selection
    assert (pick(plain), pick(lfp), pick(counts)) == ("score", "spectrum", "score")
    assert pick(lfp, selection="score") == "score"
    with pytest.raises(ValueError, match="selection"):
        DSRConfig.from_params(selection="rhythm").check()


def test_final_check_runs_longer_free_runs_on_the_validation_data(lorenz_series, monkeypatch):
    from nwb_dsr.protocol import EvaluationProtocol
    lengths = []
    orig = EvaluationProtocol.evaluate

    def spy(self, latent, readout, segments, z0=None, probes=None):
        lengths.append((self.n_steps, self.n_starts, sum(len(s) for s in segments),
                        0 if probes is None else len(probes)))
        res = orig(self, latent, readout, segments, z0, probes)
        # scores 1, 2, 3 in validation (an untrained map may not give a finite one), then 4, 5
        return dataclasses.replace(res, score=float(len(lengths)))

    probed = []
    orig_probes = EvaluationProtocol.probe_states

    def probe_spy(self, latent, readout, segments):
        probed.append([len(s) for s in segments])
        return orig_probes(self, latent, readout, segments)

    monkeypatch.setattr(EvaluationProtocol, "evaluate", spy)
    monkeypatch.setattr(EvaluationProtocol, "probe_states", probe_spy)
    est = DSR(**{**FINAL_KW, "epochs": 3}, n_val_steps=300, n_val_starts=2, n_final_steps=900,
              n_final_checks=2, n_final_probes=7).fit(lorenz_series[:1000])
    assert probed == [[900], [900]]
    # three validations, then the two best checkpoints again, on the held-back 100 bins, with
    # collapse-only runs from seven states of the 900 training bins and from the mean state
    assert lengths == [(300, 2, 100, 0)] * 3 + [(900, 2, 100, 8)] * 2
    assert len(est.history_.final_probes_collapsed) == 2
    assert all(0 <= k <= 8 for k in est.history_.final_probes_collapsed)
    h = est.history_
    assert (h.final_epochs, h.final_score) == ([1, 2], [4.0, 5.0])
    assert (h.best_epoch, h.best_score) == (1, 4.0)


@pytest.mark.parametrize("collapses, stopped_at", [
    ([None] * 12, 15),                          # best at epoch 1, then 14 stale validations
    ([None, "fixed point", "non-finite"] * 4, 43),  # collapsed validations do not count
])
def test_patience_counts_validations_whose_run_did_not_collapse(lorenz_series, monkeypatch,
                                                               collapses, stopped_at):
    from nwb_dsr.protocol import ProtocolResult
    from nwb_dsr.training.trainer import Trainer as T
    seen = []

    def fake(self, segments):  # the first validation is the best, the others stall
        c = collapses[len(seen) % len(collapses)] if seen else None
        seen.append(c)
        score = 1.0 if len(seen) == 1 else 2.0 + (1000.0 if c else 0.0)
        return ProtocolResult(1.0, 0.1, score, c, None, None, None)

    monkeypatch.setattr(T, "validate", fake)
    est = DSR(hidden_dim=8, tau=5, epochs=100, batches_per_epoch=1, batch_size=8, eval_every=1,
              patience=14, progress=False, n_final_checks=1).fit(lorenz_series[:600])
    assert est.history_.stopped == "early_stop" and est.history_.best_epoch == 1
    assert est.history_.epochs == stopped_at


def test_max_time_stops_training(lorenz_series):
    est = DSR(hidden_dim=8, tau=5, epochs=None, max_time=1.5, progress=False).fit(lorenz_series[:2000])
    assert est.history_.stopped == "max_time"
    assert 1.0 < est.history_.seconds < 10.0


def test_poisson_model_trains_without_nan():
    rng = np.random.default_rng(0)
    t = np.arange(3000) * 0.1
    latent = np.stack([np.sin(t), np.cos(t)], 1)
    C = rng.normal(size=(8, 2))
    counts = rng.poisson(np.exp(latent @ C.T * 0.7 - 0.5))
    est = DSR(latent_dim=2, hidden_dim=16, tau=10, epochs=5, batches_per_epoch=10, progress=False)
    est.fit(Observations(counts, kind="counts", bin_size=0.01))
    assert est.observation_model_.name == "poisson"
    assert np.all(np.isfinite(est.history_.loss))
    x = est.generate(200, sample=True)
    assert np.all(x >= 0) and np.all(x == np.round(x))


# ----------------------------------------------------------------------------- estimator API
def test_estimator_round_trip_and_api(lorenz_series, tmp_path):
    est = DSR(hidden_dim=16, tau=10, epochs=2, batches_per_epoch=5, progress=False)
    est.fit(lorenz_series[:2000], bin_size=0.01)
    assert est.bin_size_ == 0.01 and est.n_features_in_ == 3 and est.tau_ == 10
    z = est.transform(lorenz_series[:100])
    assert len(z) == 1 and z[0].shape == (100, 6)            # two latent units per channel
    p = est.predict([lorenz_series[:50], lorenz_series[50:120]])
    assert [a.shape for a in p] == [(50, 3), (70, 3)]
    assert isinstance(est.score(lorenz_series[:500]), float)
    path = est.save(tmp_path / "m.npz")
    back = DSR.load(path)
    np.testing.assert_array_equal(back.generate(300, x0=lorenz_series[0]),
                                  est.generate(300, x0=lorenz_series[0]))
    assert back.get_params() == est.get_params()


def test_generate_is_reproducible_with_sampling(lorenz_series):
    est = DSR(hidden_dim=8, tau=5, epochs=1, batches_per_epoch=2, progress=False).fit(lorenz_series[:500])
    a = est.generate(100, sample=True, seed=1)
    assert np.array_equal(a, est.generate(100, sample=True, seed=1))
    assert not np.array_equal(a, est.generate(100, sample=True, seed=2))


def test_transform_before_fit_raises():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        DSR().transform(np.zeros((10, 2)))


BAD_INPUT = [
    (dict(), np.array([[0.0, np.nan]] * 50), ValueError, "NaN or inf"),
    (dict(), np.zeros((4, 5, 6)), ValueError, r"shape \(n_bins, n_channels\)"),
    (dict(tau=0), np.zeros((100, 2)), ValueError, "tau must be 'auto' or an integer number"),
    (dict(tau="fast"), np.zeros((100, 2)), ValueError, "tau must be 'auto' or an integer number"),
    (dict(tau=50), np.random.default_rng(0).normal(size=(30, 2)), ValueError,
     "shorter than one training window"),
    (dict(model="transformer"), np.zeros((100, 2)), ValueError, "model must be one of"),
    (dict(observation="poisson"), np.random.default_rng(0).normal(size=(100, 2)), ValueError,
     "needs spike counts"),
    (dict(mode="tbptt"), np.zeros((100, 2)), ValueError, "mode must be one of"),
    (dict(latent_dim=0), np.zeros((100, 2)), ValueError, "latent_dim must be None .* or an integer"),
    (dict(continuity=-1.0), np.zeros((100, 2)), ValueError, "continuity must be a weight >= 0"),
    (dict(lr=0), np.zeros((100, 2)), ValueError, "lr must be a positive learning rate"),
    (dict(ema_decay=1.0), np.zeros((100, 2)), ValueError,
     r"ema_decay must be a decay in \[0, 1\)"),
    (dict(ensemble=0), np.zeros((100, 2)), ValueError, "ensemble must be 'auto' or an integer"),
    (dict(ensemble="many"), np.zeros((100, 2)), ValueError,
     "ensemble must be 'auto' or an integer"),
    (dict(epochs=None, max_time=None), np.zeros((100, 2)), ValueError, "give epochs, max_time"),
    (dict(device="tpu"), np.zeros((100, 2)), ValueError, "device must be"),
    (dict(n_final_checks=0), np.zeros((100, 2)), ValueError,
     "n_final_checks must be 'auto' or an integer >= 1"),
    (dict(n_final_checks="all"), np.zeros((100, 2)), ValueError,
     "n_final_checks must be 'auto' or an integer >= 1"),
    (dict(n_final_steps=5000), np.zeros((100, 2)), ValueError,
     r"n_final_steps must be at least n_val_steps \(10000\)"),
    (dict(n_final_steps=2.5e4), np.zeros((100, 2)), ValueError,
     "n_final_steps must be an integer >= 100"),
    (dict(alpha=0.0), np.zeros((100, 2)), ValueError, r"alpha must be a forcing strength in \(0, 1\]"),
    (dict(smoothing=-0.01), Observations(np.ones((100, 2)), kind="counts", bin_size=0.01),
     ValueError, "smoothing must be a width in seconds"),
    (dict(), "data.nwb", TypeError, "read_units or nwb_dsr.read_lfp"),
]


@pytest.mark.parametrize("params,X,err,match", BAD_INPUT)
def test_bad_input_gives_one_clear_error(params, X, err, match):
    with pytest.raises(err, match=match):
        DSR(**{"progress": False, "epochs": 1, **params}).fit(X)


def test_observations_validation_messages():
    with pytest.raises(ValueError, match="bin_size must be a positive"):
        Observations(np.zeros((5, 2)), bin_size=0)
    with pytest.raises(ValueError, match="same number of channels"):
        Observations([np.zeros((5, 2)), np.zeros((5, 3))])
    with pytest.raises(ValueError, match="negative values"):
        Observations(np.full((5, 2), -1.0), kind="counts")
    with pytest.raises(ValueError, match="kind must be one of"):
        Observations(np.zeros((5, 2)), kind="spikes")


def test_warm_start_resumes_from_the_fitted_parameters(lorenz_series):
    kw = dict(hidden_dim=16, tau=10, epochs=4, batches_per_epoch=10, progress=False,
              validation_fraction=0.0)
    est = DSR(**kw).fit(lorenz_series[:2000])
    first = est.history_.loss[-1]
    est.set_params(warm_start=True).fit(lorenz_series[:2000])
    assert est.history_.loss[0] < 0.8 * DSR(**kw).fit(lorenz_series[:2000]).history_.loss[0]
    assert est.history_.loss[0] < 2 * first


@pytest.mark.parametrize("name", sorted(LATENT_MODELS))
def test_free_run_of_a_batch_matches_stepping_in_torch(name):
    m = make_latent_model(name, 3, hidden_dim=10, n_bases=3, seed=2)
    z0 = 0.5 * torch.randn(4, m.state_dim, generator=torch.Generator().manual_seed(0))
    ref, z = [], z0
    for _ in range(25):
        z = m.step(z).detach()
        ref.append(z)
    run = free_run(m, z0, 25)  # NumPy path for the maps that have one
    assert run.shape == (4, 25, m.state_dim)
    torch.testing.assert_close(run, torch.stack(ref, 1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(free_run(m, z0[2:3], 25)[0], run[2], atol=1e-6, rtol=1e-6)


class _HalfAttracted(LatentModel):
    """x keeps its sign; y flips sign every step where x > 0 and decays to rest where x < 0."""

    def __init__(self):
        super().__init__(2)
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def step(self, z):
        x, y = z[:, :1], z[:, 1:]
        return torch.cat([x, torch.where(x > 0, -y, 0.5 * y)], 1)


def test_validation_from_several_starts_catches_a_fixed_point_that_attracts_some():
    from nwb_dsr.protocol import EvaluationProtocol
    obs = GaussianObservation(2, 2)
    with torch.no_grad():
        obs.B.copy_(torch.eye(2)); obs.b.zero_()
    flip = np.where(np.arange(400) % 2 == 0, 1.0, -1.0)
    ref = np.stack([np.r_[np.ones(200), -np.ones(200)], flip], 1)  # x > 0 first, then x < 0
    one = EvaluationProtocol(n_steps=300).evaluate(_HalfAttracted(), obs, [ref])
    two = EvaluationProtocol(n_steps=300, n_starts=2).evaluate(_HalfAttracted(), obs, [ref])
    assert one.collapse is None and one.generated.shape == (300, 2)
    assert two.collapse == "fixed_point" and two.generated.shape == (600, 2)
    assert two.score > one.score + 999  # ranked after every checkpoint that did not collapse
