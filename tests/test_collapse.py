"""Collapse detection (nwb_dsr.collapse) and its use in model selection, the estimator,
evaluate() and the NWB metrics table."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from nwb_dsr import DSR
from nwb_dsr.analysis import evaluate
from nwb_dsr.collapse import (COLLAPSE_REASONS, DAMPED_AMPLITUDE, CollapseWarning,
                              describe_collapse, detect_collapse)
from nwb_dsr.models.latent import LatentModel
from nwb_dsr.protocol import COLLAPSE_PENALTY, EvaluationProtocol, ProtocolResult
from nwb_dsr.training import trainer as trainer_module

T = np.arange(4000) * 0.05
DATA = np.stack([np.sin(T), np.cos(1.3 * T)], axis=1) * 3.0 + 1.0


@pytest.mark.parametrize("generated, expected", [
    (DATA[::-1], None),                                              # same attractor
    (np.stack([np.sin(2 * T), np.cos(T)], 1) * 3.0 + 1.0, None),     # another oscillation
    (np.full_like(DATA, 1.0), "fixed_point"),                        # flat at the mean
    (np.full_like(DATA, 7.0), "fixed_point"),                        # flat elsewhere
    (1.0 + (DATA - 1.0) * np.exp(-0.05 * T)[:, None], "fixed_point"),  # decays onto a point
    (1.0 + (DATA - 1.0) * np.exp(0.02 * T)[:, None], "exploding"),     # grows without bound
    (np.r_[DATA[:10], np.full((5, 2), np.nan)], "non_finite"),
    (np.r_[DATA[:10], np.full((5, 2), np.inf)], "non_finite"),
])
def test_detect_collapse_rules(generated, expected):
    assert detect_collapse(generated, DATA) == expected


def test_one_channel_moving_is_not_a_fixed_point():
    gen = DATA.copy()
    gen[:, 1] = 1.0   # one channel flat, the other still oscillates
    assert detect_collapse(gen, DATA) is None


def test_flat_output_is_fine_when_the_data_are_at_rest():
    rest = np.full((500, 3), 2.0)
    assert detect_collapse(np.full((300, 3), 2.0), rest) is None
    assert detect_collapse(np.full((300,), 5.0), np.zeros(100)) is None


def test_a_run_on_a_small_oscillation_is_damped_when_asked():
    small = 1.0 + 0.1 * (DATA - 1.0)              # moves, at a tenth of the data's amplitude
    assert detect_collapse(small, DATA) is None
    assert detect_collapse(small, DATA, damped=0.25) == "damped"
    assert detect_collapse(1.0 + 0.3 * (DATA - 1.0), DATA, damped=0.25) is None
    assert detect_collapse(np.full_like(DATA, 1.0), DATA, damped=0.25) == "fixed_point"
    with pytest.raises(ValueError, match="damped must lie"):
        detect_collapse(DATA, DATA, damped=1.5)


def test_thresholds_are_parameters():
    small = 1.0 + 0.1 * (DATA - 1.0)              # 10 % of the data's spread
    assert detect_collapse(small, DATA) is None
    assert detect_collapse(small, DATA, flat=0.2) == "fixed_point"
    far = DATA + 60.0                             # 60 > 20 standard deviations (2.1) away
    assert detect_collapse(far, DATA) == "exploding"
    assert detect_collapse(far, DATA, explode=50.0) is None


@pytest.mark.parametrize("args, match", [
    ((np.zeros((10, 2)), np.zeros((10, 3))), "same number of channels"),
    ((np.zeros((0, 2)), np.ones((10, 2))), "must not be empty"),
])
def test_detect_collapse_errors(args, match):
    with pytest.raises(ValueError, match=match):
        detect_collapse(*args)
    with pytest.raises(ValueError, match="tail must lie"):
        detect_collapse(DATA, DATA, tail=0.0)


def test_every_reason_has_a_sentence():
    for reason in COLLAPSE_REASONS:
        assert describe_collapse(reason).startswith("the free run")
    assert describe_collapse(None) == ""


# ------------------------------------------------------------------ model selection and hooks
def _fake_validation(pattern):
    """Trainer.validate replacement: validation k returns pattern[k] = (score, collapse)."""
    calls = []

    def fake(self, segments):
        score, reason = pattern[min(len(calls), len(pattern) - 1)]
        calls.append(reason)
        return ProtocolResult(score, 0.0, score + (COLLAPSE_PENALTY if reason else 0.0), reason,
                              None, None, None)
    return fake


KW = dict(latent_dim=2, hidden_dim=8, tau=5, epochs=4, eval_every=1, batches_per_epoch=2,
          batch_size=8, progress=False, seed=0, n_final_checks=1)


def test_selection_skips_collapsed_checkpoints(monkeypatch):
    # the collapsed checkpoints score better (flat runs can look close in D_stsp) yet are skipped
    pattern = [(5.0, None), (1.0, "fixed_point"), (3.0, None), (0.5, "exploding")]
    monkeypatch.setattr(trainer_module.Trainer, "validate", _fake_validation(pattern))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        est = DSR(**KW).fit(DATA[:800], bin_size=0.05)
    h = est.history_
    assert h.val_collapse == [None, "fixed_point", None, "exploding"]
    assert h.best_epoch == 3 and h.collapse is None and est.collapse_ is None


def test_fit_warns_once_when_every_checkpoint_collapsed(monkeypatch):
    pattern = [(2.0, "fixed_point"), (1.0, "fixed_point"), (3.0, "exploding")]
    monkeypatch.setattr(trainer_module.Trainer, "validate", _fake_validation(pattern))
    with pytest.warns(CollapseWarning, match="collapsed onto a fixed point .* at every validation"
                      ".*tau='auto'") as rec:
        est = DSR(**KW).fit(DATA[:800], bin_size=0.05)
    assert len([w for w in rec if issubclass(w.category, CollapseWarning)]) == 1
    assert est.history_.best_epoch == 2 and est.collapse_ == "fixed_point"
    # the record survives saving and loading
    assert DSR.from_state(*est.to_state()).collapse_ == "fixed_point"


def test_final_check_decides_the_collapse_record(monkeypatch):
    # validation saw no collapse; the longer final runs of both kept checkpoints come to rest
    pattern = [(2.0, None), (1.0, None), (3.0, None)]
    monkeypatch.setattr(trainer_module.Trainer, "validate", _fake_validation(pattern))
    final = [(1000.9, "fixed_point"), (1000.4, "exploding")]
    monkeypatch.setattr(trainer_module.Trainer, "final_check",
                        lambda self, segments, probes=None, _f=_fake_validation(final): _f(self, segments))
    with pytest.warns(CollapseWarning, match="exploded .* in the final check of the 2 best "
                      "checkpoints of this fit") as rec:
        est = DSR(**{**KW, "epochs": 3, "n_final_checks": 2}).fit(DATA[:800], bin_size=0.05)
    assert len([w for w in rec if issubclass(w.category, CollapseWarning)]) == 1
    h = est.history_
    assert h.final_epochs == [2, 1] and h.final_collapse == ["fixed_point", "exploding"]
    assert h.best_epoch == 1 and est.collapse_ == "exploding"
    assert h.best_score == pytest.approx(1000.4 + COLLAPSE_PENALTY)


def test_final_check_marks_runs_that_drift_off_the_validated_attractor(monkeypatch):
    # validation scores 2.0, 1.0, 3.0; in the longer final runs the best (epoch 2, 1.0) scores
    # 3.0 (drifting: more than twice its validation score and by more than the margin), the
    # next (epoch 1, 2.0) 2.5: it is chosen, and nothing is reported as collapsed
    pattern = [(2.0, None), (1.0, None), (3.0, None)]
    monkeypatch.setattr(trainer_module.Trainer, "validate", _fake_validation(pattern))
    final = [(3.0, None), (2.5, None)]
    monkeypatch.setattr(trainer_module.Trainer, "final_check",
                        lambda self, segments, probes=None, _f=_fake_validation(final): _f(self, segments))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        est = DSR(**{**KW, "epochs": 3, "n_final_checks": 2, "restarts": 0}).fit(
            DATA[:800], bin_size=0.05)
    h = est.history_
    assert h.final_epochs == [2, 1] and h.final_collapse == ["drifting", None]
    assert h.final_score == [pytest.approx(3.0 + COLLAPSE_PENALTY), 2.5]
    assert h.best_epoch == 1 and est.collapse_ is None
    # when every kept checkpoint drifts, the fit warns (and with restarts fits another member)
    monkeypatch.setattr(trainer_module.Trainer, "validate", _fake_validation(pattern))
    final = [(3.0, None), (4.5, None)]
    monkeypatch.setattr(trainer_module.Trainer, "final_check",
                        lambda self, segments, probes=None, _f=_fake_validation(final): _f(self, segments))
    with pytest.warns(CollapseWarning, match="drifted off the attractor .* in the final check"):
        est = DSR(**{**KW, "epochs": 3, "n_final_checks": 2, "restarts": 0}).fit(
            DATA[:800], bin_size=0.05)
    assert est.collapse_ == "drifting" and est.history_.final_collapse == ["drifting"] * 2


def test_validation_score_detects_a_collapsed_model():
    est = DSR(**{**KW, "epochs": 1}).fit(DATA[:800], bin_size=0.05)
    lat = est.latent_model_
    with torch.no_grad():   # a map onto a constant: z' = h
        for p in lat.parameters():
            p.zero_()
    res = EvaluationProtocol(max_steps=500).evaluate(lat, est.observation_model_, [DATA[800:1600]])
    assert res.collapse == "fixed_point" and res.score >= COLLAPSE_PENALTY
    with pytest.warns(CollapseWarning, match="fixed point .* on these data"):
        res = evaluate(est, DATA[800:1600], pe_steps=(1,), n_lyapunov=200)
    assert res["collapse"] == "fixed_point"


class _Rotating(LatentModel):
    """A planar map: rotation by 0.3 rad a step, the radius r scaled by ``factor(r)``."""

    def __init__(self):
        super().__init__(2)

    def step(self, z):
        r = z.norm(dim=-1, keepdim=True)
        c, s = math.cos(0.3), math.sin(0.3)
        rot = torch.stack([c * z[..., 0] - s * z[..., 1], s * z[..., 0] + c * z[..., 1]], -1)
        return rot * self.factor(r)


class _Bistable(_Rotating):
    """Radius r -> r (1 + 0.3 (r - 1)(2 - r)): the ring r = 2 attracts the states beyond
    r = 1, the origin (a fixed point) those inside."""

    name = "bistable"

    def factor(self, r):
        return 1 + 0.3 * (r - 1) * (2 - r)


def _ring(radius, n=600):
    t = np.arange(n) * 0.3
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _identity_readout(offset=0.0):
    """A Gaussian read-out y = z + offset of the planar maps: the data are the states."""
    from nwb_dsr.models import GaussianObservation
    ro = GaussianObservation(2, 2)
    with torch.no_grad():
        ro.B.copy_(torch.eye(2)); ro.b.fill_(offset)
    return ro


def test_probes_catch_a_fixed_point_that_the_reference_starts_miss():
    lat, ro = _Bistable(), _identity_readout()
    ref = [_ring(2.0)]
    proto = EvaluationProtocol(n_steps=400, n_starts=3, n_probes=5, probe_steps=400)
    plain = proto.evaluate(lat, ro, ref)
    assert plain.collapse is None and plain.n_probes == 0 and plain.score < COLLAPSE_PENALTY
    # states of data inside the ring fall onto the origin
    inner = proto.evaluate(lat, ro, ref, probes=proto.probe_states(lat, ro, [_ring(0.5)]))
    assert inner.collapse == "fixed_point"
    assert (inner.n_probes, inner.n_probes_collapsed) == (5, 5)
    assert inner.score == pytest.approx(plain.score + COLLAPSE_PENALTY)
    assert inner.dstsp == plain.dstsp   # probes are not scored
    # probes spread over two segments: 3 of 5 start at r = 1.5 and reach the ring
    mixed = proto.evaluate(lat, ro, ref,
                           probes=proto.probe_states(lat, ro, [_ring(1.5), _ring(0.5)]))
    assert mixed.collapse == "fixed_point" and mixed.n_probes_collapsed == 2
    outer = proto.evaluate(lat, ro, ref, probes=proto.probe_states(lat, ro, [_ring(1.5)]))
    assert outer.collapse is None and (outer.n_probes, outer.n_probes_collapsed) == (5, 0)


class _TwoRings(_Rotating):
    """Radius r -> r - 0.3 (r - 0.3)(r - 1)(r - 2): the ring r = 2 attracts the states
    beyond r = 1, the small ring r = 0.3 those inside."""

    name = "two_rings"

    def factor(self, r):
        return 1 - 0.3 * (r - 0.3) * (r - 1) * (r - 2) / r.clamp_min(1e-12)


def test_probes_catch_a_small_oscillation_of_continuous_data_not_of_counts():
    from nwb_dsr.models import PoissonObservation
    lat, ro = _TwoRings(), _identity_readout()
    ref = [_ring(2.0)]
    proto = EvaluationProtocol(n_steps=400, n_starts=3, n_probes=5, probe_steps=400)
    assert proto.evaluate(lat, ro, ref).collapse is None
    # states inside r = 1 settle on the ring r = 0.3: it moves (not a fixed point), at 0.15 of
    # the data's amplitude
    inner = proto.evaluate(lat, ro, ref, probes=proto.probe_states(lat, ro, [_ring(0.5)]))
    assert inner.collapse == "damped" and inner.n_probes_collapsed == 5
    outer = proto.evaluate(lat, ro, ref, probes=proto.probe_states(lat, ro, [_ring(1.5)]))
    assert outer.collapse is None
    assert EvaluationProtocol.damped(ro, ref) == DAMPED_AMPLITUDE
    # spike counts carry Poisson noise that a noise-free read-out lacks: not checked
    counts = [np.random.default_rng(0).poisson(2.0, size=(600, 2))]
    assert EvaluationProtocol.damped(PoissonObservation(2, 2), counts) is None
    assert EvaluationProtocol.damped(ro, counts) is None
    shifted = _identity_readout(10.0)   # y = z + 10, and its data as whole numbers
    probes = proto.probe_states(lat, shifted, [10.0 + _ring(0.5)])
    assert proto.evaluate(lat, shifted, [10.0 + _ring(2.0)], probes=probes).collapse == "damped"
    assert proto.evaluate(lat, shifted, [np.round(10.0 + _ring(2.0))],
                          probes=probes).collapse is None


class _Runaway(_Rotating):
    """Radius r -> r + 0.3 (2 - r)(3 - r): the ring r = 2 attracts the states inside r = 3
    (the origin is a fixed point), beyond it the state runs away."""

    name = "runaway"

    def factor(self, r):
        return 1 + 0.3 * (2 - r) * (3 - r) / r.clamp_min(1e-12)


@pytest.mark.parametrize("latent, radius, runaways", [
    (_Runaway, 3.5, 5),     # every probe starts beyond r = 3
    (_Runaway, 2.5, 0),     # every probe reaches the ring
    (_Bistable, 0.5, 0),    # every probe comes to rest: a fixed point is not a runaway
])
def test_without_a_final_check_the_chosen_checkpoint_is_probed_for_runaways(latent, radius,
                                                                          runaways):
    from nwb_dsr.config import EvaluationConfig, OptimizationConfig, RunConfig
    from nwb_dsr.training.forcing import make_forcing
    ro = _identity_readout()
    evaluation = EvaluationConfig(n_val_steps=400, n_val_starts=3, n_final_checks=1,
                                  n_final_probes=5)
    tr = trainer_module.Trainer(latent(), ro, make_forcing("sparse", tau=10),
                                OptimizationConfig(), evaluation, RunConfig(progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the runaways overflow
        probed = tr._select([(1.0, 3, tr._snapshot())], [_ring(2.0)], [_ring(radius)])
    h = tr.history
    assert h.final_epochs == []       # no final check: validation's choice stays
    assert h.best_epoch == 3
    # the 5 probes from the training data; the mean state (the origin) rests, not counted
    assert h.probes_runaway == runaways
    assert h.best_score == 1.0      # counted (and warned about by fit), not penalised
    assert len(probed) == 6 and probed[0] == "fixed_point"   # the mean state, then the 5
    assert [r for r in probed if r in trainer_module.RUNAWAYS] == ["non_finite"] * runaways
    off = trainer_module.Trainer(latent(), ro, make_forcing("sparse", tau=10),
                                 OptimizationConfig(),
                                 EvaluationConfig(n_final_checks=1, n_final_probes=0),
                                 RunConfig(progress=False))
    assert off._select([(1.0, 3, off._snapshot())], [_ring(2.0)], [_ring(radius)]) == []
    assert off.history.probes_runaway is None and off.history.best_score == 1.0


def test_a_counts_fit_warns_when_its_model_runs_away_from_states_of_the_data(monkeypatch):
    from nwb_dsr import Observations
    from nwb_dsr.datasets import make_lorenz_population
    pop = make_lorenz_population(n_units=20, duration=40.0, n_lfp_channels=0,
                                 spike_times=False, seed=1)
    counts = Observations(pop.counts, kind="counts", bin_size=0.01)
    seen = []

    def probe(self, segments, probe_segments=None):
        seen.append(sum(len(s) for s in probe_segments))
        return [None, "fixed_point", "non_finite"] + [None] * (self.final_protocol.n_probes - 2)

    monkeypatch.setattr(trainer_module.Trainer, "probe", probe)
    # validation passes (this barely trained map would come to rest there)
    monkeypatch.setattr(trainer_module.Trainer, "validate", lambda self, segments: ProtocolResult(
        1.0, 0.1, 1.4, None, None, None, None))
    kw = dict(epochs=2, eval_every=1, batches_per_epoch=2, batch_size=16, hidden_dim=8,
              ensemble=1, progress=False)
    with pytest.warns(CollapseWarning, match=r"NaN or infinite when started from 1 of 33 "):
        est = DSR(seed=0, **kw).fit(counts)
    assert seen and seen[0] < len(pop.counts)   # the training part, not the held-back data
    assert est.history_.probes_runaway == 1 and est.members_[0]["probes_runaway"] == 1
    assert est.history_.collapse is None        # validation's judgement stands
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        est = DSR(seed=0, n_final_probes=0, **kw).fit(counts)
    assert est.history_.probes_runaway is None


def test_collapse_row_in_the_nwb_metrics_table():
    from nwb_dsr.nwb.writer import _flatten_metrics
    rows = _flatten_metrics({"dh": 0.2, "collapse": "fixed_point"})
    assert ("collapsed", 1.0, "fixed_point") in rows
    assert ("collapsed", 0.0, "") in _flatten_metrics({"collapse": None})


def test_public_names():
    import nwb_dsr
    assert nwb_dsr.CollapseWarning is CollapseWarning
    assert nwb_dsr.detect_collapse is detect_collapse
    assert issubclass(CollapseWarning, RuntimeWarning)
