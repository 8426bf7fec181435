"""Written files against the ecosystem: pynwb validation, nwbinspector, a process without
nwb_dsr, pynapple, and real NWB files written by other software."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pynwb
import pytest

from nwb_dsr.datasets import write_lorenz_nwb
from nwb_dsr.nwb import list_dynamics, read_dynamics, read_results, write_dynamics
from nwb_dsr.nwb.testing import file_snapshot, mock_fitted_estimator

SHARED_NWB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nwb"


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _serious(path) -> set:
    """(check, object type, location) of CRITICAL and BEST_PRACTICE_VIOLATION messages."""
    from nwbinspector import Importance, inspect_nwbfile
    # schema validation is tested separately with pynwb.validate, so the inspector skips it
    return {(m.check_function_name, m.object_type, m.location)
            for m in inspect_nwbfile(nwbfile_path=str(path), skip_validate=True,
                                     importance_threshold=Importance.BEST_PRACTICE_VIOLATION)
            if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION")}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A synthetic recording (units, trials, LFP) and a copy with one fit, with metrics."""
    d = tmp_path_factory.mktemp("files")
    src = write_lorenz_nwb(d / "rec.nwb", n_units=4, duration=3.0, n_trials=2,
                           n_lfp_channels=2)
    est, obs = mock_fitted_estimator(model="shallow_plrnn", n_channels=4, n_bins=200)
    out = write_dynamics(src, est, obs, name="fit", n_generate=50,
                         metrics={"D_stsp": 0.3, "D_H": 0.2, "PE": {"20": 0.1}},
                         lyapunov=[0.9, 0.0, -3.0, -8.0])
    return src, out


def test_validates_and_inspector_adds_no_serious_message(written):
    src, out = written
    assert pynwb.validate(path=str(out)) == []
    assert _serious(out) - _serious(src) == set()


def test_opens_without_nwb_dsr_and_pynapple_gives_a_tsdframe(written, tmp_path):
    _, out = written
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class _Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "nwb_dsr" or name.startswith("nwb_dsr."):
                    raise ImportError("nwb_dsr is not installed in this process")
        sys.meta_path.insert(0, _Block())
        try:
            import nwb_dsr
        except ImportError:
            pass
        else:
            raise SystemExit("nwb_dsr was importable in the child process")
        from pynwb import NWBHDF5IO
        with NWBHDF5IO({str(out)!r}, "r", load_namespaces=True) as io:
            model = io.read().processing["dynamics"]["fit"]
            assert type(model).__name__ == "DynamicalSystemModel", type(model)
            assert model.latent.data.shape == (200, 2), model.latent.data.shape
            assert sorted(model.parameters.model_parameters)[0] == "latent.A"
        import pynapple as nap
        data = nap.load_file({str(out)!r})
        latent = data["latent"]
        assert type(latent).__name__ == "TsdFrame", type(latent)
        assert latent.shape == (200, 2), latent.shape
        assert abs(latent.t[0] - 0.005) < 1e-9, latent.t[0]
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")


def test_pynapple_in_process_keys_several_fits(written, tmp_path):
    import pynapple as nap
    _, out = written
    est, obs = mock_fitted_estimator(model="rnn", n_channels=4, n_bins=200)
    two = write_dynamics(out, est, obs, name="second", out=tmp_path / "two.nwb", n_generate=10)
    data = nap.NWBFile(str(two))
    keys = set(data.keys())
    assert {"fit/latent", "second/latent"} <= keys, keys
    assert isinstance(data["second/latent"], nap.TsdFrame)


# ------------------------------------------------------------------ real files from elsewhere

def _real(name):
    path = SHARED_NWB / name
    if not path.is_file():
        pytest.skip(f"shared test data not found at {path}")
    return path


def _same_data(before: dict, after: dict):
    """Every object of ``before`` is in ``after`` with the same data; pynwb's schema upgrade on
    append may only retype the electrodes table and bump the root nwb_version."""
    for key, value in before.items():
        assert key in after, f"{key} disappeared"
        if value == after[key]:
            continue
        if key == "/":
            changed = {k for k in value if value[k] != after[key].get(k)}
            assert changed <= {"nwb_version"}, changed
        elif key == "/general/extracellular_ephys/electrodes":
            a, b = dict(value[1]), dict(after[key][1])
            for k in ("namespace", "neurodata_type"):
                a.pop(k), b.pop(k)
            assert a == b
        else:
            raise AssertionError(f"{key} changed: {value} -> {after[key]}")


def test_real_units_file(tmp_path):
    from nwb_dsr.io import read_units
    src = _real("pynapple_phy_A8604-211122.nwb")
    before_hash, before = _sha(src), file_snapshot(src)
    obs = read_units(src, bin_size=0.05, interval=(0.0, 60.0))
    from nwb_dsr import DSR
    est = DSR(latent_dim=2, hidden_dim=4, tau=5, epochs=1, batches_per_epoch=1, batch_size=4,
              seq_len=20, progress=False).fit(obs)
    out = write_dynamics(src, est, obs, out=tmp_path / "phy_dsr.nwb", n_generate=20)
    assert _sha(src) == before_hash
    assert pynwb.validate(path=str(out)) == []
    assert _serious(out) - _serious(src) == set()
    _same_data(before, file_snapshot(out))
    res = read_results(out)
    assert res["source_link"] == "/units"
    assert res["latent"]["timestamps"][0] == pytest.approx(obs.times(0)[0])
    assert read_dynamics(out).n_features_in_ == obs.n_channels


def test_real_lfp_file(tmp_path):
    from nwb_dsr.io import read_lfp
    src = _real("nwbguide_sub-001_ses-1.nwb")
    before_hash, before = _sha(src), file_snapshot(src)
    obs = read_lfp(src, channels=[0, 1, 2], interval=(0.0, 2.0))
    from nwb_dsr import DSR
    est = DSR(latent_dim=2, hidden_dim=4, tau=5, epochs=1, batches_per_epoch=1, batch_size=4,
              seq_len=20, progress=False).fit(obs)
    out = write_dynamics(src, est, obs, out=tmp_path / "lfp_dsr.nwb", n_generate=20)
    assert _sha(src) == before_hash
    assert pynwb.validate(path=str(out)) == []
    assert _serious(out) - _serious(src) == set()
    _same_data(before, file_snapshot(out))
    res = read_results(out)
    assert res["source_link"] == obs.provenance["object"]
    assert list(res["predicted"]["channel_ids"]) == list(obs.ids)


@pytest.mark.filterwarnings("ignore:ndx-events.extensions defines:UserWarning")
def test_real_file_pynwb_cannot_read_is_refused_cleanly(tmp_path):
    src = _real("ndx_events_test_events.nwb")
    est, obs = mock_fitted_estimator(n_channels=3)
    before = _sha(src)
    with pytest.raises(ValueError, match="pynwb cannot read the source file"):
        write_dynamics(src, est, obs, out=tmp_path / "x.nwb")
    assert _sha(src) == before and list(tmp_path.iterdir()) == []
    assert list_dynamics(src) == []
