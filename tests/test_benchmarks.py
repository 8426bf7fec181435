"""The GPU check's CPU fallback (benchmarks/device_check.py), run in its quick mode."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
import numpy as np
import torch

_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark(name):
    """The script benchmarks/<name>.py as a module (benchmarks/ on sys.path meanwhile)."""
    sys.path.insert(0, str(_DIR))
    try:
        spec = importlib.util.spec_from_file_location(name, _DIR / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(_DIR))


@pytest.fixture(scope="module")
def device_check():
    yield from _benchmark("device_check")


def _run(mod, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = mod.main(argv)
    return rc, json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


def test_device_check_cpu_fallback_fits_both_benchmarks_and_compares(device_check):
    rc, res, log = _run(device_check, ["--device", "cpu", "--quick"])
    assert rc == 0 and res["passed"], log
    checks = res["checks"]
    assert set(checks) == {"reconstruct_D_stsp", "reconstruct_D_H", "spikes_lambda_max",
                           "spikes_co_bps", "cpu_repeats_exactly"}
    assert checks["cpu_repeats_exactly"]["ok"]  # same seed, same budget, same device
    for side in ("cpu", "device"):
        r = res["results"][side]
        for model in ("shallow_plrnn", "poisson_60_units"):
            assert r["throughput"][model]["train_steps_per_s"] > 0
            assert r["throughput"][model]["generate_steps_per_s"] > 0
        assr = r["reconstruct"]
        assert assr["epochs"] == 2 and assr["D_stsp"] is not None
        assert r["spikes"]["settings"]["dsr"]["epochs_run"] == 2
    assert "throughput (steps/s)" in log and "PASSED" in log


def test_device_check_compare_flags_a_worse_device_fit(device_check):
    tol = {"dstsp": 0.3, "dh": 0.05, "lambda": 0.25, "bps": 0.05}
    cpu = {"reconstruct": {"D_stsp": 0.2, "D_H": 0.07},
           "spikes": {"lambda_max_ours": 0.9, "co_bps_ours": 0.3}}
    dev = {"reconstruct": {"D_stsp": 0.3, "D_H": 0.2},
           "spikes": {"lambda_max_ours": 0.5, "co_bps_ours": None}}
    checks = device_check.compare(cpu, dev, tol)
    assert {k: v[0] for k, v in checks.items()} == {
        "reconstruct_D_stsp": True, "reconstruct_D_H": False, "spikes_lambda_max": False,
        "spikes_co_bps": False}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_check_says_when_cuda_is_missing(device_check):
    rc, res, log = _run(device_check, ["--device", "cuda", "--quick"])
    assert rc == 2 and res == {"device": "cuda", "available": False, "passed": False}
    assert "CUDA is not available" in log and "--device cpu" in log


@pytest.fixture(scope="module")
def spikes_vs_gpfa():
    yield from _benchmark("spikes_vs_gpfa")



@pytest.mark.filterwarnings("ignore")   # a two-epoch fit: the figures are not the point
def test_spikes_benchmark_on_trials_of_another_system(spikes_vs_gpfa):
    rc, res, log = _run(spikes_vs_gpfa, [
        "--system", "chen", "--trials", "10", "--trial-duration", "1", "--n-units", "12",
        "--rate", "30", "--bin-size", "0.02", "--skip-gpfa", "--max-time", "0",
        "--dsr", json.dumps({"epochs": 2})])
    assert rc == 0, log
    settings = res["settings"]
    assert settings["system"] == "chen" and settings["n_trials"] == 10
    assert settings["trial_duration_s"] == 1.0 and settings["bin_size_s"] == 0.02
    # 8 training trials, 2 test trials of 50 bins; every test bin is scored
    assert settings["n_bins_train"] == 400 and settings["n_bins_test"] == 100
    assert settings["n_bins_co_bps"] == 100 and settings["mean_rate_hz"] == 30.0
    assert res["lambda_max_true"] == pytest.approx(2.0272 * 0.5, abs=1e-4)
    assert res["co_bps_ours"] is not None and res["latent_r2_train"] is not None
    assert "10 trials (8 train, 2 test)" in log
    # both maps to the truth are reported, and the floor is taken over the 4 training windows
    # of the test's length
    assert res["latent_r2_test_forced_map"] is not None
    assert set(res) >= {"D_stsp_forced_map", "D_H_forced_map"}
    assert res["D_stsp_data_floor"]["n_windows"] == 4
    assert 0 <= res["D_stsp_data_floor"]["min"] <= res["D_stsp_data_floor"]["max"]


@pytest.mark.filterwarnings("ignore")   # a short fit: the figures are not the point
def test_spikes_benchmark_checkpoints_list_every_validation_of_every_member(spikes_vs_gpfa):
    rc, res, log = _run(spikes_vs_gpfa, [
        "--duration", "60", "--n-units", "12", "--skip-gpfa", "--max-time", "0",
        "--checkpoints", "--dsr", json.dumps({"epochs": 4, "eval_every": 2, "ensemble": 2})])
    assert rc == 0, log
    rows = res["checkpoints"]
    seeds = [int(k.removeprefix("seed_")) for k in res["ensemble"]["members"]]
    # two members validated at epochs 2 and 4, in training order
    assert [(r["member"], r["epoch"]) for r in rows] == [(m, e) for m in seeds for e in (2, 4)]
    # counts keep validation's choice: the checkpoint with the lowest validation score of all
    chosen = [r for r in rows if r["selected"]]
    assert [(r["member"], r["epoch"]) for r in chosen] == [
        (res["ensemble"]["selected_seed"], res["settings"]["dsr"]["best_epoch"])]
    assert chosen[0]["val_score"] == min(r["val_score"] for r in rows)
    # the selected checkpoint's exponent is the fitted model's: the same map, states and steps
    assert chosen[0]["lambda_max"] == pytest.approx(res["lambda_max_ours"], abs=2e-4)
    assert "checkpoints with lambda_max within 30% of 0.906 /s" in log


def test_spikes_benchmark_data_floor_is_the_attractor_against_itself(spikes_vs_gpfa):
    from nwb_dsr.datasets import make_population
    lat = make_population("lorenz63", n_units=4, duration=300.0, bin_size=0.01, seed=0).latent
    test, train = lat[24000:], lat[:24000]
    floor = spikes_vs_gpfa.data_floor(test, train)
    assert floor["n_windows"] == 4
    # 60 s of the attractor against other 60 s (measured 0.79-2.47): far below a copy of the
    # attractor at half its size (measured 9.0-9.8)
    assert 0 < floor["min"] <= floor["mean"] <= floor["max"] < 3
    assert spikes_vs_gpfa.data_floor(test, np.concatenate([test, train]))["min"] == 0
    shrunk = spikes_vs_gpfa.data_floor(test, 0.5 * train)
    assert shrunk["min"] > 2 * floor["max"]
    short = spikes_vs_gpfa.data_floor(test, train[:1000])
    assert short["n_windows"] == 0 and np.isnan(short["mean"])


def test_spikes_benchmark_needs_both_trial_options(spikes_vs_gpfa):
    with pytest.raises(SystemExit, match="go together"):
        spikes_vs_gpfa.main(["--trials", "10", "--skip-gpfa"])
    with pytest.raises(SystemExit, match="Unknown system"):
        spikes_vs_gpfa.main(["--system", "duffing", "--skip-gpfa"])


# ------------------------------------------------------------------ real_population.py
@pytest.fixture(scope="module")
def real_population():
    yield from _benchmark("real_population")



@pytest.fixture(scope="module")
def trial_file(tmp_path_factory):
    from nwb_dsr.datasets import write_lorenz_nwb
    path = tmp_path_factory.mktemp("realpop") / "tiny_trials.nwb"
    return write_lorenz_nwb(path, n_units=6, duration=20.0, n_trials=10, lfp=False, seed=0)


_TINY_DSR = ["--max-time", "0", "--dsr", '{"epochs": 2, "batches_per_epoch": 2}']


def test_real_population_trials_json_and_gpfa_cache(real_population, trial_file, tmp_path):
    cache = tmp_path / "gpfa"
    argv = [str(trial_file), "--seeds", "0", "1", "--x-dim", "2", "--gpfa-em-iters", "3",
            "--cache", str(cache), *_TINY_DSR]
    rc, res, log = _run(real_population, argv)
    assert rc == 0, log
    assert {"per_seed", "lambda_max_mean", "lambda_max_sd", "lambda_max_cv", "sign_agreement",
            "class_agreement", "epsilon", "co_bps_ours_mean", "co_bps_gpfa",
            "co_bps_gpfa_variants", "fit_seconds_gpfa", "gpfa_cached", "gpfa_cache_file",
            "held_out_units", "trials", "settings"} <= set(res)
    assert res["trials"] is True and res["gpfa_cached"] is False
    assert res["settings"]["n_train_segments"] == 8 and res["settings"]["n_test_segments"] == 2
    assert [r["seed"] for r in res["per_seed"]] == [0, 1]
    for r in res["per_seed"]:
        assert {"co_bps", "lambda_max", "dynamics", "protocol_D_H", "protocol_D_stsp",
                "rate_generated_hz", "rate_data_hz", "fit_seconds"} <= set(r)
        assert r["dynamics"] in ("fixed point", "limit cycle", "chaos", "undetermined")
        assert r["epochs"] == 2
    key = Path(res["gpfa_cache_file"])
    assert key.parent == cache and key.is_file() and key.with_suffix(".json").is_file()
    assert set(np.load(key, allow_pickle=False).files) == {"C", "d", "R", "gamma", "eps"}

    rc, again, log = _run(real_population, argv[:3] + ["0"] + argv[4:])  # seed 0 only
    assert rc == 0 and again["gpfa_cached"] is True and "from the cache" in log
    assert again["co_bps_gpfa"] == res["co_bps_gpfa"]
    assert again["per_seed"][0]["co_bps"] == res["per_seed"][0]["co_bps"]


def test_real_population_without_trials(real_population, trial_file, tmp_path):
    from nwb_dsr.models.rollout import SMOOTHER_WEIGHTS
    argv = [str(trial_file), "--no-trials", "--seeds", "0", "--trial-length", "1.0",
            "--x-dim", "2", "--gpfa-em-iters", "2", "--cache", str(tmp_path), *_TINY_DSR,
            "--smoother-weights", *map(str, SMOOTHER_WEIGHTS)]
    rc, res, log = _run(real_population, argv)
    assert rc == 0, log
    assert res["trials"] is False and res["settings"]["n_train_segments"] == 1
    # 20 s: 1600 training bins (16 GPFA windows), 400 test bins scored in 4 windows of 1 s
    assert res["settings"]["n_test_bins_scored"] == 400 and res["co_bps_gpfa"] is not None
    # co-smoothing under each fixed weight; the default's chosen weight is one of them
    row = res["per_seed"][0]
    assert list(row["co_bps_by_weight"]) == [f"{w:g}" for w in SMOOTHER_WEIGHTS]
    assert row["co_bps"] in row["co_bps_by_weight"].values()
    assert len(set(row["co_bps_by_weight"].values())) > 1


def test_real_population_members_co_smooth_with_each_members_checkpoint(real_population,
                                                                        trial_file):
    argv = [str(trial_file), "--seeds", "0", "--skip-gpfa", "--members", "--max-time", "0",
            "--dsr", '{"epochs": 4, "batches_per_epoch": 2, "eval_every": 2, "ensemble": 2}']
    rc, res, log = _run(real_population, argv)
    assert rc == 0, log
    row = res["per_seed"][0]
    members = row["members"]
    assert len(members) == 2 and all("co_bps" in m for m in members)
    # the selected member's checkpoint is the model: the same co-smoothing
    assert next(m for m in members if m["selected"])["co_bps"] == row["co_bps"] is not None
    # a member whose every validation failed has no checkpoint to co-smooth with
    assert all((m["co_bps"] is None) == (m["score"] is None) for m in members)


def test_real_population_errors(real_population, trial_file):
    with pytest.raises(SystemExit, match="--x-dim must be between 1 and"):
        real_population.main([str(trial_file), "--x-dim", "8", "--seeds", "0"])
    with pytest.raises(SystemExit, match="--smoother-weights must be numbers >= 0"):
        real_population.main([str(trial_file), "--smoother-weights", "10", "-1"])


# ------------------------------------------------------------------ lfp_real.py
@pytest.fixture(scope="module")
def lfp_real():
    yield from _benchmark("lfp_real")


def test_lfp_real_window_peaks_follow_a_rhythm_that_changes(lfp_real):
    from nwb_dsr import Observations
    rng = np.random.default_rng(0)
    t = np.arange(3000) * 0.01  # 30 s at 100 Hz: 10 Hz for 20 s, then 4 Hz
    f = np.where(t < 20, 10.0, 4.0)
    x = np.sin(2 * np.pi * np.cumsum(f) * 0.01)[:, None] + 0.3 * rng.normal(size=(3000, 2))
    peaks = lfp_real.window_peaks(Observations(x, bin_size=0.01), 10.0, {"fmin": 1, "fmax": 40})
    assert [w["start_s"] for w in peaks] == [0, 10, 20]
    assert [round(w["peak_hz"]) for w in peaks] == [10, 10, 4]
    assert lfp_real.relative_error(11.0, 10.0) == pytest.approx(0.1)
    assert lfp_real.relative_error(None, 10.0) is None


def test_lfp_real_reports_training_peak_and_members_on_the_eeg(lfp_real):
    from conftest import SHARED
    path = SHARED / "nwb" / "eeg_openbci_8ch_blinks_jaw_alpha.nwb"
    if not path.is_file():
        pytest.skip(f"shared recording not found at {path}")
    argv = [str(path), "--seeds", "0", "--max-time", "600", "--lyapunov-steps", "500",
            "--dsr", '{"epochs": 1, "batches_per_epoch": 2, "ensemble": 2, "restarts": 0, '
            '"n_val_steps": 200}']
    rc, res, log = _run(lfp_real, argv)
    assert rc == 0, log
    r = res["runs"][0]
    assert {"peak_data_hz", "peak_train_hz", "peak_gen_hz", "peak_rel_error",
            "peak_rel_error_train", "dh", "dstsp", "tau_method"} <= set(r)
    # the blinks (first 11 s) and the jaw clench (last 8 s) are set aside: the 67 s kept, in
    # 10-s windows, and the held-out fifth hold the alpha of channels 6-7
    rej = r["preprocess"]["reject"]
    assert rej["rejected"][0][0] < 0.01 and rej["rejected"][-1][1] > 89.9
    assert 60 <= rej["kept_s"] <= 75
    peaks = [w["peak_hz"] for w in r["peak_data_windows"]]
    starts = [w["start_s"] for w in r["peak_data_windows"]]
    assert len(peaks) == 7 and starts[0] == pytest.approx(rej["rejected"][0][1], abs=0.02)
    assert starts == sorted(starts) and starts[-1] < 82
    assert all(9 <= p <= 13 for p in peaks[1:])
    assert 9 <= r["peak_data_hz"] <= 13 and 9 <= r["peak_train_hz"] <= 13
    assert [m["selected"] for m in r["members"]].count(True) == 1 and len(r["members"]) == 2
    # the final check of the kept checkpoints (none when no validation run stayed finite), each
    # with its 33 collapse-only runs
    assert len(r["final_check"]) <= 8
    assert all(0 <= c["probes_collapsed"] <= 33 for c in r["final_check"])


def test_lfp_real_blocks_held_back_spread_through_the_stretches(lfp_real):
    from nwb_dsr import Observations
    x = np.arange(1000, dtype=float)[:, None] * [1.0, -1.0]
    obs = Observations([x[:300], x[300:]], bin_size=0.01)
    fit, val = lfp_real.blocks_held_back(obs, 0.1, 4)
    # 4 blocks of 25 bins centred on 125, 375, 625 and 875 (bins of the two stretches in order)
    assert [v[0, 0] for v in val.data] == [112.0, 362.0, 612.0, 862.0]
    assert all(len(v) == 25 for v in val.data)
    held = np.concatenate(fit.data + val.data)[:, 0]
    assert sorted(held) == list(x[:, 0])   # every bin once, in the part to fit or in a block
    assert not any(np.any(np.diff(s[:, 0]) != 1) for s in fit.data)   # no piece spans a gap
    with pytest.raises(ValueError, match="no validation block"):   # 18 bins, stretches of 10
        lfp_real.blocks_held_back(Observations([x[:10], x[10:20]], bin_size=0.01), 0.9, 1)


def test_lfp_real_checkpoints_scores_what_selection_chose_from(lfp_real):
    settings = {"epochs": 4, "eval_every": 2, "ensemble": 2, "restarts": 0, "n_val_steps": 200,
                "n_final_steps": 400, "n_final_probes": 2, "latent_dim": 3}
    argv = ["--lorenz", "--duration", "60", "--seeds", "0", "--max-time", "600",
            "--lyapunov-steps", "200", "--checkpoints", "--validation-blocks", "3",
            "--dsr", json.dumps(settings)]
    rc, res, log = _run(lfp_real, argv)
    assert rc == 0, log
    r = res["runs"][0]
    rows = r["checkpoints"]
    # two validations (epochs 2 and 4) of each of the two members
    assert sorted((m["seed"], e) for m in r["members"] for e in (2, 4)) == \
        sorted((c["member"], c["epoch"]) for c in rows)
    chosen = [c for c in rows if c["selected"]]
    assert len(chosen) == 1 and chosen[0]["dh"] == pytest.approx(r["dh"])
    finals = [c for c in rows if "final_score" in c]
    assert finals and all(np.isfinite(c["train_score"]) or c["train_collapse"] for c in finals)
    assert all(c["final_score"] == pytest.approx(c["final_dstsp"] + 4 * c["final_dh"])
               for c in finals if c["final_collapse"] is None)
    # a field potential: the final check ranks by the spectrum and rhythm against the training
    # part (D_stsp + 100 D_H there, + 100 for a missed rhythm); the model has the lowest rank
    from nwb_dsr.protocol import RHYTHM_PENALTY, RHYTHM_TOLERANCE
    for c in finals:
        if c["final_collapse"] is None:
            e = c["final_rhythm_error"]
            missed = e is not None and e > RHYTHM_TOLERANCE + 1e-9
            assert c["final_rank"] >= RHYTHM_PENALTY or not missed
    assert chosen[0]["final_rank"] == min(c["final_rank"] for c in finals)
    assert r["peak_validation_hz"] is None or r["peak_validation_hz"] > 0
