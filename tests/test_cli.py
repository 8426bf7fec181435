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
    report = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert report["preprocess"]["rate"] == 75.0 and "collapse" in report
    assert main(["fit", str(recording), "--source", "lfp", "--interval", "0", "3", "--out",
                 str(out), "--overwrite", "--rate", "50", "--band", ",10", "--notch", "60",
                 "--components", "1", "--json", *TINY]) == 0
    summary = _last_json(capsys.readouterr().out)
    assert summary["metrics"]["n_bins"] == 150 and summary["metrics"]["bin_size"] == 0.02
    res = read_results(out)
    sel = res["selection"]
    assert "collapsed" in res["metrics"]          # the metrics table says whether it collapsed
    assert sel["band"] == [None, 10.0] and sel["notch"] == 60.0 and sel["n_components"] == 1
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
