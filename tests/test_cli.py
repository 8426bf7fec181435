"""The nwb-dsr command line, called in-process (main([...])) and once as `python -m nwb_dsr`."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pynwb
import pytest

from nwb_dsr.cli import main
from nwb_dsr.datasets import write_lorenz_nwb
from nwb_dsr.nwb import list_dynamics, read_dynamics, read_results, write_dynamics
from nwb_dsr.nwb.testing import mock_fitted_estimator

TINY = ["--epochs", "1", "--batches-per-epoch", "2", "--latent-dim", "2", "--hidden-dim", "4",
        "--tau", "5", "--no-progress", "--lyapunov-steps", "200", "--n-generate", "50"]


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return write_lorenz_nwb(d / "rec.nwb", n_units=4, duration=6.0, n_lfp_channels=2)


@pytest.fixture(scope="module")
def fit_run(recording, tmp_path_factory):
    """`nwb-dsr fit` on a copy of the recording: default output, a report, --json."""
    d = tmp_path_factory.mktemp("fitted")
    src = d / "rec.nwb"
    shutil.copyfile(recording, src)
    before, report, stdout = _sha(src), d / "report", io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["fit", str(src), "--source", "units", "--bin-size", "0.02", "--report",
                     str(report), "--name", "u", "--json", *TINY])
    assert code == 0
    return {"source": src, "hash_before": before, "out": d / "rec_dsr.nwb", "report": report,
            "stdout": stdout.getvalue()}


@pytest.fixture(scope="module")
def fitted_file(fit_run):
    return fit_run["out"], fit_run["report"]


def test_fit_units_writes_file_report_and_json(fit_run):
    out, report = fit_run["out"], fit_run["report"]
    payload = _last_json(fit_run["stdout"])  # --json: the last line is one JSON object
    assert payload["output"] == str(out) and out.is_file()  # default: <stem>_dsr.nwb
    assert payload["name"] == "u" and payload["report"] == str(report)
    assert "wrote fit 'u'" in fit_run["stdout"] and str(report) in fit_run["stdout"]
    assert _sha(fit_run["source"]) == fit_run["hash_before"]
    names = {p.name for p in report.iterdir()}
    assert {"loss.png", "attractor.png", "spectra.png", "raster.png", "metrics.json"} <= names
    metrics = json.loads((report / "metrics.json").read_text())
    assert "dstsp" in metrics and metrics["name"] == "u"
    assert pynwb.validate(path=str(out)) == []
    (fit,) = list_dynamics(out)
    assert fit["name"] == "u" and fit["source_object"] == "/units" and "D_stsp" in fit["metrics"]


def test_fit_refuses_existing_output_before_fitting(fit_run, capsys):
    t0 = time.perf_counter()
    assert main(["fit", str(fit_run["source"]), "--source", "units", *TINY]) == 2
    assert "already exists" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 5  # no fit was run


def test_fit_lfp_in_place_adds_to_a_copy(recording, tmp_path, capsys):
    copy = tmp_path / "copy.nwb"
    copy.write_bytes(recording.read_bytes())
    assert main(["fit", str(copy), "--source", "lfp", "--channels", "0-1", "--interval", "0",
                 "3", "--in-place", "--name", "lfp", *TINY]) == 0
    (fit,) = list_dynamics(copy)
    assert fit["name"] == "lfp" and fit["data_kind"] == "continuous"
    assert fit["observation_model"] == "gaussian" and fit["n_channels"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.nwb"]
    capsys.readouterr()
    assert main(["evaluate", str(copy), "--name", "lfp", "--json", "--lyapunov-steps", "200"]) == 0
    metrics = _last_json(capsys.readouterr().out)["metrics"]
    # evaluate re-reads with the stored preprocessing: 3 s at the default 75 Hz (the series is
    # stored at 250 Hz)
    assert metrics["kind"] == "continuous" and metrics["n_bins"] == 225
    assert "collapse" in metrics


def test_fit_lfp_preprocessing_options(recording, tmp_path, capsys):
    out = tmp_path / "o.nwb"
    assert main(["fit", str(recording), "--source", "lfp", "--interval", "0", "3", "--out",
                 str(out), "--report", str(tmp_path / "rep"), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "preprocessing: band [0.1, 30.0] Hz, rate 75 Hz, mains none" in printed
    assert "artefacts not tested (3 windows of 1 s)" in printed   # too short to judge
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["preprocess"]["rate"] == 75.0 and "collapse" in report
    assert main(["fit", str(recording), "--source", "lfp", "--interval", "0", "3", "--out",
                 str(out), "--overwrite", "--rate", "50", "--band", ",10", "--notch", "60",
                 "--components", "1", "--reject", "6", "--json", *TINY]) == 0
    summary = _last_json(capsys.readouterr().out)
    assert summary["metrics"]["n_bins"] == 150 and summary["metrics"]["bin_size"] == 0.02
    res = read_results(out)
    sel = res["selection"]
    assert "collapsed" in res["metrics"]          # the metrics table says whether it collapsed
    assert sel["band"] == [None, 10.0] and sel["notch"] == 60.0 and sel["n_components"] == 1
    assert sel["reject"] == 6.0
    assert main(["fit", str(recording), "--source", "lfp", "--interval", "0", "3", "--out",
                 str(out), "--overwrite", "--no-preprocess", "--json", *TINY]) == 0
    summary = _last_json(capsys.readouterr().out)
    assert summary["metrics"]["n_bins"] == 750   # raw: the series' 250 Hz


def test_evaluate_rereads_the_stored_selection(fitted_file, tmp_path, capsys):
    out, _ = fitted_file
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json", "--lyapunov-steps", "200"]) == 0
    cap = capsys.readouterr()
    payload = _last_json(cap.out)
    assert payload["command"] == "evaluate" and "dstsp" in payload["metrics"]
    assert payload["metrics"]["n_bins"] == 300  # 6 s at 0.02 s: the same data as the fit
    assert "D_stsp=" in cap.out


def test_simulate_reproduces_the_stored_trajectory(fitted_file, tmp_path, capsys):
    out, _ = fitted_file
    npy = tmp_path / "sim.npy"
    assert main(["simulate", str(out), "--steps", "50", "--out", str(npy), "--latent"]) == 0
    stored = read_results(out)["generated"]
    np.testing.assert_array_equal(np.load(npy), stored["data"])
    assert main(["simulate", str(out), "--steps", "50", "--out", str(npy),
                 "--seed", str(stored["seed"]), "--json"]) == 0
    np.testing.assert_array_equal(np.load(npy), stored["samples"])
    payload = _last_json(capsys.readouterr().out)
    assert payload["shape"] == [50, 4] and payload["sampled"] is True
    assert main(["simulate", str(out), "--steps", "20", "--out", str(npy)]) == 0
    assert np.load(npy).shape == (20, 4)


def test_info_lists_file_and_fits(fitted_file, capsys):
    out, _ = fitted_file
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    cap = capsys.readouterr()
    payload = _last_json(cap.out)
    assert [f["name"] for f in payload["fits"]] == ["u"]
    assert "dynamics/u: shallow_plrnn" in cap.out


def test_demo_quick(tmp_path, capsys):
    import torch
    folder = tmp_path / "demo"
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["demo", "--out", str(folder), "--quick", "--no-progress", "--json"]) == 0
        assert torch.get_num_threads() == 1  # --threads defaults to one torch thread
    finally:
        torch.set_num_threads(n)
    cap = capsys.readouterr()
    payload = _last_json(cap.out)
    out = Path(payload["output"])
    assert out == folder / "lorenz_demo_dsr.nwb" and out.is_file()
    report = folder / "report"
    names = {p.name for p in report.iterdir()}
    assert {"loss.png", "attractor.png", "spectra.png", "raster.png", "metrics.json"} <= names
    assert read_dynamics(out).latent_model_.name == "shallow_plrnn"
    assert "true" in cap.out and str(report) in cap.out


# ---------------------------------------------------------------------------- trials
@pytest.fixture(scope="module")
def trial_recording(tmp_path_factory):
    """12 trials of 1 s (0.5-s gaps) with a go cue, a boolean and a float column; 4 units."""
    from pynwb.testing.mock.file import mock_NWBFile
    rng = np.random.default_rng(0)
    nwb = mock_NWBFile()
    nwb.add_unit_column("good", "usable unit")
    nwb.add_unit_column("quality", "sorting quality")
    for k in range(4):
        t = np.sort(rng.uniform(0.0, 18.0, rng.poisson(18.0 * 20.0)))
        nwb.add_unit(spike_times=t, good=k != 3, quality="mua" if k == 0 else "good")
    nwb.add_trial_column("go_time", "go cue (s)")
    nwb.add_trial_column("correct", "correct response")
    nwb.add_trial_column("rt", "reaction time (s)")
    for k in range(12):
        start = 1.5 * k
        nwb.add_trial(start_time=start, stop_time=start + 1.0, go_time=start + 0.3,
                      correct=k % 3 != 0, rt=0.2 + 0.05 * k)
    path = tmp_path_factory.mktemp("trials") / "trials.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_fit_trials_aligned_filtered_units_by_column(trial_recording, tmp_path, capsys):
    out = tmp_path / "fit.nwb"
    argv = ["fit", str(trial_recording), "--source", "units", "--bin-size", "0.02",
            "--trials", "--align-to", "go_time", "--trial-window", "-0.2", "0.6",
            "--trial-filter", "correct", "--units", "good", "--out", str(out), "--json", *TINY]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "n_segments=8, n_bins=320, n_channels=3" in cap.out  # 8 trials x 40 bins
    est = read_dynamics(out)
    sel = est.provenance_["selection"]
    assert sel["trials"] == [1, 2, 4, 5, 7, 8, 10, 11]  # correct == k % 3 != 0
    assert sel["align_to"] == "go_time" and sel["trial_window"] == [-0.2, 0.6]
    assert sel["unit_ids"] == [0, 1, 2]
    assert sel["command_line"] == {"trials": "all", "trial_filter": "correct",
                                   "align_to": "go_time", "trial_window": [-0.2, 0.6],
                                   "units": "good"}
    # the stored selection reads the same 8 aligned trials of 40 bins again
    assert main(["evaluate", str(out), "--lyapunov-steps", "200"]) == 0
    assert "data:" in capsys.readouterr().out


def test_fit_trials_by_rows_and_expressions(trial_recording, tmp_path):
    out = tmp_path / "fit.nwb"
    argv = ["fit", str(trial_recording), "--source", "units", "--bin-size", "0.02",
            "--trials", "0-7", "--trial-filter", "rt < 0.45", "--units",
            "quality == 'good'", "--out", str(out), *TINY]
    assert main(argv) == 0
    sel = read_dynamics(out).provenance_["selection"]
    assert sel["trials"] == [0, 1, 2, 3, 4]  # rt = 0.2 + 0.05 k < 0.45
    assert sel["trial_window"] is None and sel["unit_ids"] == [1, 2, 3]
    assert sel["command_line"]["trial_filter"] == "rt < 0.45"


def test_fit_help_documents_trial_options(capsys):
    assert main(["fit", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--trials", "--align-to", "--trial-window", "--trial-filter", "--units"):
        assert flag in text
    assert "IDS|COLUMN|EXPR" in text and "BEFORE AFTER" in text


def test_info_shows_trial_columns(trial_recording, capsys):
    assert main(["info", str(trial_recording)]) == 0
    out = capsys.readouterr().out
    assert "12 trials" in out and "go_time" in out and "correct" in out


TRIAL_ERRORS = [
    (["--align-to", "go_time"], r"--align-to applies to trials; add --trials"),
    (["--trial-window", "0", "1"], r"--trial-window applies to trials"),
    (["--trials", "--align-to", "go_time"], r"needs --trial-window BEFORE AFTER"),
    (["--trials", "--align-to", "cue", "--trial-window", "-0.1", "0.5"],
     r"does not have; its columns are .*go_time"),
    (["--trials", "--trial-window", "0.5", "0.1"], r"BEFORE < AFTER"),
    (["--trials", "nope"], r"trials table has no column 'nope'; its columns are .*correct"),
    (["--trials", "0-99"], r"out of range: the trials table has 12 rows"),
    (["--trials", "rt >"], r"trials selection callable failed .* columns are .*rt"),
    (["--trials", "--trial-filter", "rt"], r"column 'rt' of the trials table holds float64"),
    (["--trials", "--trial-filter", "0-3"], r"select trials by row with --trials ROWS"),
    (["--trials", "--trial-filter", "rt > 9"], r"kept no trials"),
    (["--units", "sorted"], r"Units table has no column 'sorted'; its columns are .*good"),
]


@pytest.mark.parametrize("options, message", TRIAL_ERRORS)
def test_trial_option_errors(trial_recording, tmp_path, capsys, options, message):
    import re
    argv = ["fit", str(trial_recording), "--source", "units", "--out",
            str(tmp_path / "x.nwb"), *options, *TINY]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "x.nwb").exists()


def test_trials_on_a_file_without_trials(recording, tmp_path, capsys):
    assert main(["fit", str(recording), "--source", "units", "--trials", "--out",
                 str(tmp_path / "x.nwb"), *TINY]) == 2
    assert "no trials table" in capsys.readouterr().err


def test_fit_real_lever_task_trials(tmp_path, capsys):
    from conftest import SHARED
    path = SHARED / "nwb" / "rat_m1_lever_taps.nwb"
    if not path.is_file():
        pytest.skip(f"shared NWB file not found at {path}")
    out = tmp_path / "rat.nwb"
    argv = ["fit", str(path), "--source", "units", "--trials", "0-199", "--align-to",
            "tap1_time", "--trial-window", "-0.2", "0.8", "--trial-filter",
            "tap2_time - tap1_time < 0.26", "--units", "0-9", "--out", str(out), "--json",
            *TINY]
    assert main(argv) == 0
    payload = _last_json(capsys.readouterr().out)
    sel = read_dynamics(out).provenance_["selection"]
    assert 0 < len(sel["trials"]) < 200 and sel["unit_ids"] == list(range(10))
    assert sel["align_to"] == "tap1_time" and payload["epochs"] == 1


def _errors():
    return [
        (["fit", "{missing}", "--source", "units"], "no file at"),
        (["fit", "{rec}", "--source", "units", "--channels", "0"], "--channels selects LFP"),
        (["fit", "{rec}", "--source", "lfp", "--units", "0"], "--units selects units"),
        (["fit", "{rec}", "--source", "lfp", "--bin-size", "0.01", "--rate", "50"],
         "--bin-size or --rate"),
        (["fit", "{rec}", "--source", "units", "--out", "{rec}"], "out is the source"),
        (["fit", "{rec}", "--source", "units", "--out", "{tmp}/none/x.nwb"], "does not exist"),
        (["simulate", "{missing}", "--steps", "5", "--out", "{tmp}/x.npy"], "no file at"),
        (["simulate", "{rec}", "--steps", "5", "--out", "{tmp}/x.txt"], "must be a .npy file"),
        (["simulate", "{rec}", "--steps", "5", "--out", "{tmp}/x.npy"], "holds no nwb_dsr fit"),
        (["evaluate", "{rec}"], "holds no nwb_dsr fit"),
        (["evaluate", "{array_fit}"], "fitted to an array"),
        (["info", "{missing}"], ""),
    ]


@pytest.fixture(scope="module")
def array_fit(recording, tmp_path_factory):
    """A fit of a plain array (no source object) written next to a copy of the recording."""
    est, obs = mock_fitted_estimator(n_channels=3)
    out = tmp_path_factory.mktemp("array") / "array_fit.nwb"
    return write_dynamics(recording, est, obs, out=out, n_generate=5)


@pytest.mark.parametrize("argv, message", _errors())
def test_errors_are_one_line_and_exit_2(recording, array_fit, tmp_path, capsys, argv, message):
    subs = {"missing": str(tmp_path / "missing.nwb"), "rec": str(recording), "tmp": str(tmp_path),
            "array_fit": str(array_fit)}
    capsys.readouterr()
    assert main([a.format(**subs) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("nwb-dsr ") and message in err


@pytest.mark.parametrize("argv", [["fit", "x.nwb"], ["fit", "x.nwb", "--source", "units",
                                                     "--tau", "0"],
                                  ["fit", "x.nwb", "--source", "units", "--threads", "0"],
                                  ["fit", "x.nwb", "--source", "lfp", "--band", "1-40"],
                                  ["fit", "x.nwb", "--source", "lfp", "--rate", "-5"],
                                  ["nope"], []])
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_console_entry_point_python_m(fitted_file, tmp_path):
    out, _ = fitted_file
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "nwb_dsr", "info", str(out), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [f["name"] for f in _last_json(proc.stdout)["fits"]] == ["u"]


def test_cli_and_python_defaults_give_the_same_fit(fit_run):
    """`nwb-dsr fit FILE --source units` and DSR() on read_units(FILE) fit the same model: both
    take their defaults from DSRConfig (the CLI passes only what it is given)."""
    from nwb_dsr import DSR, read_units
    from nwb_dsr.config import DSRConfig
    fitted = read_dynamics(fit_run["out"], name="u")
    obs = read_units(fit_run["source"], 0.02)
    est = DSR(epochs=1, batches_per_epoch=2, latent_dim=2, hidden_dim=4, tau=5,
              progress=False).fit(obs)
    assert fitted.get_params() == est.get_params()
    assert fitted.resolved_config_ == est.resolved_config_
    p_cli, p_py = fitted.to_state()[1], est.to_state()[1]
    for key in p_py:
        np.testing.assert_array_equal(p_cli[key], p_py[key])
    # every default the CLI does not set is the configuration's
    defaults = DSRConfig.defaults()
    given = {"epochs", "batches_per_epoch", "latent_dim", "hidden_dim", "tau", "progress"}
    assert {k: v for k, v in fitted.get_params().items() if k not in given} == \
        {k: v for k, v in defaults.items() if k not in given}
