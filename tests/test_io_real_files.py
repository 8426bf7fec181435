"""The readers on real NWB files written by other software (../shared/data/nwb): each file
either reads or fails with one clear NWBReadError."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pynwb")

from nwb_dsr import Observations  # noqa: E402
from nwb_dsr.io import NWBReadError, NWBReadWarning, file_info, format_info  # noqa: E402
from nwb_dsr.io import read_lfp, read_units  # noqa: E402

NWB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nwb"
FILES = sorted(p.name for p in NWB_DIR.glob("*.nwb")) if NWB_DIR.is_dir() else []

pytestmark = [
    pytest.mark.skipif(not FILES, reason=f"shared NWB files not found in {NWB_DIR}"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:ndx-events.extensions defines:UserWarning"),
]


def _path(name: str) -> Path:
    p = NWB_DIR / name
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.mark.parametrize("name", FILES or ["none"])
def test_every_file_reads_or_fails_clearly(name):
    path = _path(name)
    info = file_info(path)
    json.dumps(info)
    assert format_info(info).startswith(str(path.resolve()))
    for reader in (lambda: read_units(path, 0.05), lambda: read_lfp(path, rate=100.0)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NWBReadWarning)
                obs = reader()
        except NWBReadError as err:
            assert str(err)[0].islower() or str(err)[0] == "/"  # one sentence, no traceback
            assert "Traceback" not in str(err)
        else:
            assert isinstance(obs, Observations) and obs.n_bins > 0


def test_pynapple_phy_units():
    obs = read_units(_path("pynapple_phy_A8604-211122.nwb"), 0.01)
    assert obs.n_channels == 3 and list(obs.ids) == [6, 191, 206]
    assert obs.data[0].sum() == 21354  # every spike binned (no obs_intervals in the file)
    assert set(obs.channel_info) >= {"location", "electrode_group"}
    with pytest.raises(NWBReadError, match="has no ElectricalSeries"):
        read_lfp(_path("pynapple_phy_A8604-211122.nwb"))


def test_hdmfzarr_units_and_trials():
    path = _path("hdmfzarr_sub_anm00239123_ecephys_and_ogen.nwb")
    obs = read_units(path, 0.05)
    assert obs.n_channels == 4 and obs.data[0].sum() == 34057
    assert "cell_type" in obs.channel_info and "electrode_location" in obs.channel_info
    trials = read_units(path, 0.05, trials=True, trial_filter={"type": "lick left"})
    assert 0 < trials.n_segments < 412
    with pytest.warns(NWBReadWarning, match="have NaN 'pole_in_time' times"):
        aligned = read_units(path, 0.05, trials=True, align_to="pole_in_time",
                             trial_window=(-0.5, 1.0))
    assert set(aligned.lengths) == {30}


def test_nwbguide_lfp_in_volts():
    path = _path("nwbguide_sub-001_ses-1.nwb")
    obs = read_lfp(path, rate=250.0, channels=[0, 1, 2, 3], preprocess=False)  # raw volts
    assert obs.data[0].shape == (1317, 4) and obs.bin_size == pytest.approx(0.004)
    assert obs.provenance["object"] == "/acquisition/ElectricalSeriesLF"
    assert 1e-6 < np.abs(obs.data[0]).max() < 1e-2  # int16 * 9.375e-6 V: volts, not counts
    full = read_lfp(path, channels=[0, 1, 2, 3], preprocess=False)
    np.testing.assert_allclose(obs.data[0][50:-50], full.data[0][::10][50:-50],
                               atol=0.5 * np.abs(full.data[0]).max())
    with pytest.raises(NWBReadError, match="has no Units table"):
        read_units(path, 0.01)


def test_rat_m1_trials_aligned_to_tap():
    path = _path("rat_m1_lever_taps.nwb")
    obs = read_units(path, 0.02, trials=True, align_to="tap1_time", trial_window=(-0.5, 1.0))
    assert obs.n_channels == 30 and set(obs.lengths) == {75}
    assert obs.n_segments == 1266


def test_extension_files():
    with pytest.raises(NWBReadError, match=r"`pip install ndx-events`"):
        read_lfp(_path("ndx_events_test_events.nwb"))
    info = file_info(_path("ndx_events_test_events.nwb"))
    assert info["extensions"] == {"ndx-events": ["0.4.0"]}
    info = file_info(_path("pynwb_2.1.0_nwbfile_with_extension.nwb"))
    assert "ndx-testextension" in info["extensions"]
    with pytest.raises(NWBReadError, match="has no Units table"):
        read_units(_path("pynwb_2.1.0_nwbfile_with_extension.nwb"), 0.01)
