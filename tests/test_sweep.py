"""Sweeps on Ray Tune: the search space, the results table, write-back, ASHA, kill and resume.

Ray runs with 2 CPUs; the recordings and fits are tiny. Errors in the input are raised before
Ray starts.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.tune")
pd = pytest.importorskip("pandas")

import nwb_dsr  # noqa: E402
from nwb_dsr.cli import main  # noqa: E402
from nwb_dsr.datasets import write_lorenz_nwb  # noqa: E402
from nwb_dsr.sweeps import SweepError, load_config, sweep  # noqa: E402

ROOT = Path(nwb_dsr.__file__).resolve().parents[1]
#: a fit of about a second: 6 validation rounds
FAST = {"epochs": 6, "eval_every": 1, "batches_per_epoch": 3, "batch_size": 16, "seq_len": 30,
        "latent_dim": 2, "hidden_dim": 8}


def _env() -> dict:
    path = os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]]
                                          if os.environ.get("PYTHONPATH") else []))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("sessions")
    return [write_lorenz_nwb(d / f"rec{i}.nwb", n_units=5, duration=8.0, n_lfp_channels=2,
                             seed=i) for i in (1, 2)]


@pytest.fixture(scope="module")
def ray_cpus():
    """One local Ray with 2 CPUs for the in-process sweeps of this module, shut down after."""
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", runtime_env={"env_vars": {
                 k: v for k, v in _env().items()
                 if k in ("PYTHONPATH", "OMP_NUM_THREADS", "TQDM_DISABLE")}})
    yield 2
    ray.shutdown()


# ------------------------------------------------------------------ input errors (no Ray)

@pytest.mark.parametrize("kwargs,match", [
    ({"files": ["/nonexistent/rec.nwb"]}, r"no file at /nonexistent/rec.nwb; give existing"),
    ({"files": ["/nonexistent/*.nwb"]}, r"matches no file; check the folder and the pattern"),
    ({"files": []}, r"no recordings given"),
    ({"settings": {"taus": [1, 2]}}, r"unknown setting\(s\) \['taus'\]; valid settings"),
    ({"settings": {"seed": [1, 2]}}, r"give seeds with the seeds argument"),
    ({"settings": {"lr": {"gaussian": [0, 1]}}}, r"a mapping must name one distribution"),
    ({"sources": "spikes"}, r"unknown source 'spikes'; sources are"),
    ({"sources": {"units": {"binsize": 0.1}}}, r"unknown option\(s\) \['binsize'\] for the units"),
    ({"scheduler": "hyperband"}, r"unknown scheduler 'hyperband'; use 'fifo'"),
    ({"seeds": 0}, r"seeds must be a positive number"),
])
def test_bad_input_is_one_clear_error(kwargs, match, recordings, tmp_path):
    args = {"files": [str(recordings[0])], "out": tmp_path / "out", **kwargs}
    with pytest.raises(SweepError, match=match) as info:
        sweep(**args)
    assert "\n" not in str(info.value)


def test_unreachable_url_and_bad_config(recordings, tmp_path, file_server):
    from nwb_dsr.io.remote import RemoteFileError
    url = file_server(recordings[0].parent).url("missing.nwb")
    with pytest.raises(RemoteFileError, match="answered 404"):
        sweep([url], out=tmp_path / "out")
    bad = tmp_path / "bad.yaml"
    bad.write_text("files: [a.nwb]\nsetings: {tau: 3}\n")
    with pytest.raises(SweepError, match=r"unknown key\(s\) \['setings'\]"):
        load_config(bad)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["sweep", "--config", str(bad)]) == 2
        assert main(["sweep", str(tmp_path / "none*.nwb"), "--out", str(tmp_path)]) == 2
        assert main(["sweep", str(recordings[0]), "--set", "tau"]) == 2  # argparse: usage
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("nwb-dsr sweep: error")]
    assert len(lines) == 3 and "matches no file" in lines[1]
    assert "argument --set: must be NAME=VALUE" in lines[2]


# ------------------------------------------------------------------ a sweep, end to end

def _readable_without_nwb_dsr(path: Path, name: str, tmp_path: Path):
    code = textwrap.dedent(f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "nwb_dsr" or name.startswith("nwb_dsr."):
                    raise ImportError("nwb_dsr is not installed in this process")
        sys.meta_path.insert(0, _Block())
        from pynwb import NWBHDF5IO
        with NWBHDF5IO({str(path)!r}, "r", load_namespaces=True) as io:
            model = io.read().processing["dynamics"][{name!r}]
            assert type(model).__name__ == "DynamicalSystemModel", type(model)
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sweep_over_files_seeds_and_tau(recordings, ray_cpus, tmp_path, file_server, capsys):
    import pynwb
    server = file_server(recordings[1].parent)
    files = [str(recordings[0]), server.url(recordings[1].name)]  # a path and a URL
    res = sweep(files, sources={"units": {"bin_size": 0.02}}, settings={"tau": [4, 8], **FAST},
                seeds=2, out=tmp_path / "out", lyapunov_steps=200)
    printed = capsys.readouterr().out
    df = res.table
    assert len(df) == 8 and set(df["status"]) == {"finished"}
    assert sorted(df.groupby(["file", "tau"]).size().tolist()) == [2, 2, 2, 2]
    assert df["trial_id"].is_unique
    for col in ("file", "source", "seed", "tau", "epochs", "val_score", "dstsp", "dh", "pe_1",
                "lambda_max_per_s", "bits_per_spike_1step", "time_s", "train_seconds"):
        assert col in df.columns and df[col].notna().all(), col
    assert (df["val_score"] <= df["val_score_last"] + 1e-12).all()  # the best round so far
    # the tables on disk: CSV and Parquet, the same rows
    csv, pq = pd.read_csv(res.csv), pd.read_parquet(res.parquet)
    assert len(csv) == len(pq) == 8 and list(csv["trial_id"]) == list(pq["trial_id"])
    assert res.figure.is_file() and res.figure.stat().st_size > 1000
    assert len((res.folder / "trials.jsonl").read_text().splitlines()) == 8
    assert printed.count("finished: val=") == 8
    # one best fit per session, the lowest validation score, written back and valid NWB
    assert df["best"].sum() == 2
    for file in files:
        sub = df[df["file"] == file]
        best = sub[sub["best"]].iloc[0]
        assert best["val_score"] == sub["val_score"].min()
        out = Path(best["output"])
        assert out == res.written[file] and out.parent == res.folder
        assert pynwb.validate(path=str(out)) == []
        fit = nwb_dsr.read_dynamics(out, name="dsr")
        assert fit.tau_ == best["tau"] and fit.seed == best["seed"]
    assert res.written[files[1]].name == "rec2_dsr.nwb"  # from the URL, written locally
    _readable_without_nwb_dsr(res.written[files[0]], "dsr", tmp_path)
    # a second sweep into the same folder must be asked for explicitly
    with pytest.raises(SweepError, match="already holds a sweep; resume it"):
        sweep(files, settings={"tau": [4, 8], **FAST}, seeds=2, out=tmp_path / "out")


def test_a_failed_write_back_keeps_the_results_table(recordings, ray_cpus, tmp_path,
                                                    monkeypatch, capsys):
    import nwb_dsr.sweeps as sweeps

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(sweeps, "_write_session", broken)
    with pytest.raises(OSError, match="disk full"):
        sweep([str(recordings[0])], sources={"units": {"bin_size": 0.02}}, settings=FAST,
              seeds=1, out=tmp_path / "out", lyapunov_steps=200)
    assert "writing the best fits back failed" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(table) == 1 and table["status"].iloc[0] == "finished"
    assert not table["best"].any()


def test_cli_sweep_with_a_config_file_and_asha(recordings, ray_cpus, tmp_path):
    cfg = tmp_path / "sweep.yaml"
    fast = "".join(f"\n  {k}: {v}" for k, v in FAST.items())
    cfg.write_text(f"""files: ["{recordings[0].parent}/rec*.nwb"]
sources:
  units: {{bin_size: 0.02}}
settings:
  tau: [3, 6]
  lr: {{loguniform: [0.001, 0.01]}}{fast}
seeds: 2
scheduler: {{asha: {{grace_period: 1, reduction_factor: 2}}}}
lyapunov_steps: 200
out: result
""")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["sweep", "--config", str(cfg), "--set", "epochs=8", "--no-write",
                     "--json"])
    assert code == 0, out.getvalue()[-2000:]
    payload = json.loads(out.getvalue().strip().splitlines()[-1])
    assert payload["n_trials"] == 8 and payload["written"] == {}
    assert payload["folder"] == str(tmp_path / "result")
    df = pd.read_csv(payload["results_csv"])
    assert df["lr"].between(0.001, 0.01).all() and df["lr"].nunique() > 1
    assert (df["epochs"] == 8).all()  # --set overrides the file
    stopped = df[df["status"] == "stopped early"]
    assert len(stopped) >= 1, df[["status", "epoch", "val_score"]]
    # stopped at a rung before training ended (the last round comes with the final report,
    # so a fit that finished training is never lost to the scheduler), never evaluated
    assert (stopped["epoch"] < 8).all() and stopped["dstsp"].isna().all()
    assert stopped["val_score"].notna().all()
    assert (df[df["status"] == "finished"]["epoch"] == 8).all()


# ------------------------------------------------------------------ kill and resume

def _finished(folder: Path) -> dict:
    path = folder / "trials.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return {r["trial_id"]: r for r in rows if r["status"] == "finished"}


def test_killed_sweep_resumes_only_unfinished_trials(recordings, ray_cpus, tmp_path):
    out = tmp_path / "out"
    settings = {**FAST, "epochs": 20, "tau": 4}  # 2 files x 2 seeds: 4 trials on 2 CPUs
    cmd = [sys.executable, "-m", "nwb_dsr", "sweep", str(recordings[0]), str(recordings[1]),
           "--seeds", "2", "--bin-size", "0.02", "--out", str(out), "--num-cpus", "2",
           "--lyapunov-steps", "200", "--no-write"]
    for k, v in settings.items():
        cmd += ["--set", f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_finished(out)) < 1:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished within 120 s"
            time.sleep(0.2)
        before = _finished(out)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = time.time()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # Ray processes the sweep started
        log.close()
    assert len(before) < 4, "the sweep finished before it could be killed"

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(cmd[3:] + ["--resume", "--json"])  # in this process, on its Ray
    assert code == 0, stdout.getvalue()[-2000:] + stderr.getvalue()[-2000:]
    assert "resuming the sweep" in stdout.getvalue()
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and df["trial_id"].is_unique and set(df["status"]) == {"finished"}
    rows = df.set_index("trial_id")
    for trial_id, row in before.items():  # finished before the kill: kept, not run again
        assert rows.loc[trial_id, "started_at"] == pytest.approx(row["started_at"], abs=1e-3)
        assert rows.loc[trial_id, "started_at"] < killed_at
    rerun = rows[rows["started_at"] > killed_at]
    assert len(rerun) >= 1 and not set(rerun.index) & set(before)
    # every trial ran to the end exactly once after the kill or before it
    assert len(rerun) + len(rows[rows["started_at"] < killed_at]) == 4
    assert stdout.getvalue().count("finished: val=") >= len(rerun)
