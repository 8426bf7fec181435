"""Tests of nwb_dsr.io.file_info / format_info on a synthetic file holding everything."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO  # noqa: E402
from pynwb.ecephys import LFP, ElectricalSeries  # noqa: E402
from pynwb.testing.mock.file import mock_NWBFile  # noqa: E402

from nwb_dsr.io import file_info, format_info  # noqa: E402


@pytest.fixture(scope="module")
def rich_file(tmp_path_factory):
    nwb = mock_NWBFile()
    nwb.add_unit_column("quality", "sorting quality")
    nwb.add_unit(spike_times=[0.5, 1.0, 2.0], obs_intervals=[[0.0, 3.0]], quality="good")
    nwb.add_unit(spike_times=[0.25, 7.5], obs_intervals=[[0.0, 8.0]], quality="mua")
    nwb.add_unit(spike_times=[], obs_intervals=[[0.0, 8.0]], quality="noise")
    nwb.add_trial_column("go_cue_time", "go cue")
    nwb.add_trial(start_time=0.0, stop_time=1.0, go_cue_time=0.5)
    nwb.add_trial(start_time=1.0, stop_time=np.nan, go_cue_time=1.5)
    dev = nwb.create_device(name="probe")
    grp = nwb.create_electrode_group(name="g", description="", location="CA1", device=dev)
    for _ in range(4):
        nwb.add_electrode(group=grp, location="CA1")
    lfp = LFP(name="LFP")
    nwb.create_processing_module("ecephys", "processed").add(lfp)
    region = nwb.create_electrode_table_region([0, 1, 2, 3], "all")
    lfp.add_electrical_series(ElectricalSeries(
        name="ElectricalSeries", data=np.zeros((1000, 4), dtype=np.int16), electrodes=region,
        rate=500.0, conversion=2.5e-6))
    region2 = nwb.create_electrode_table_region([0, 1], "two")
    nwb.add_acquisition(ElectricalSeries(name="raw", data=np.zeros((300, 2)), electrodes=region2,
                                         timestamps=np.arange(300) / 1000.0))
    path = tmp_path_factory.mktemp("info") / "rich.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    # a fitted-dynamics object as the ndx-dsr writer leaves it (group attributes only)
    with h5py.File(path, "a") as f:
        g = f.require_group("processing/dynamics").create_group("dsr")
        g.attrs["namespace"] = "ndx-dsr"
        g.attrs["neurodata_type"] = "DynamicalSystemModel"
        sub = g.create_group("latent")
        sub.attrs["namespace"] = "ndx-dsr"
        sub.attrs["neurodata_type"] = "LatentTrajectory"
    return path


def test_file_info_reports_what_is_usable(rich_file):
    info = file_info(rich_file)
    json.dumps(info)  # serialisable as is
    u = info["units"]
    assert u["n_units"] == 3 and u["n_spikes"] == 5 and u["obs_intervals"] is True
    assert u["time_span"] == [0.25, 7.5] and u["spikes_per_unit"]["n_empty"] == 1
    assert "quality" in u["columns"]
    t = info["trials"]
    assert t["n_trials"] == 2 and t["n_nan_stop"] == 1 and "go_cue_time" in t["columns"]
    series = {s["path"]: s for s in info["electrical_series"]}
    lfp = series["/processing/ecephys/LFP/ElectricalSeries"]
    assert lfp["shape"] == [1000, 4] and lfp["dtype"] == "int16" and lfp["rate"] == 500.0
    assert lfp["conversion"] == 2.5e-6 and lfp["duration"] == pytest.approx(2.0)
    raw = series["/acquisition/raw"]
    assert raw["timestamps"] is True and raw["rate"] == pytest.approx(1000.0)
    assert info["dynamics"] == [{"name": "dsr", "neurodata_type": "DynamicalSystemModel",
                                 "module": "dynamics", "path": "/processing/dynamics/dsr"}]


def test_format_info_text(rich_file):
    text = format_info(file_info(rich_file))
    assert "units: 3 units, 5 spikes, 0.25-7.5 s, obs_intervals: yes" in text
    assert "1 units have no spikes" in text
    assert "trials: 2 trials" in text and "1 with NaN stop time" in text
    assert "/processing/ecephys/LFP/ElectricalSeries: shape (1000, 4) int16 at 500 Hz" in text
    assert "/processing/dynamics/dsr: DynamicalSystemModel (module dynamics)" in text
    assert text.splitlines()[1].startswith("usable: spikes (read_units), continuous signals")


def test_file_info_on_minimal_file(tmp_path):
    path = tmp_path / "empty.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(mock_NWBFile())
    info = file_info(path)
    assert info["units"] is None and info["trials"] is None
    assert info["electrical_series"] == [] and info["dynamics"] == []
    assert "nothing nwb_dsr can read" in format_info(info)
