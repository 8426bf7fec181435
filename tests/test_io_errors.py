"""Bad input to the nwb_dsr.io readers: one clear error (or a warning where the data remain
usable) per problem, every message checked in one table."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO  # noqa: E402
from pynwb.ecephys import ElectricalSeries  # noqa: E402
from pynwb.misc import Units  # noqa: E402
from pynwb.testing.mock.file import mock_NWBFile  # noqa: E402

from nwb_dsr.io import (NWBReadError, NWBReadWarning, file_info, from_spiketrains,  # noqa: E402
                        read_lfp, read_units)

NWB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nwb"


# ------------------------------------------------------------------------------ builders

def _units(*spike_lists, **kw):
    nwb = mock_NWBFile()
    for t in spike_lists:
        nwb.add_unit(spike_times=t, **kw)
    return nwb


def _series(data=None, timestamps=None, n_series=1, rate=1000.0):
    nwb = mock_NWBFile()
    dev = nwb.create_device(name="probe")
    grp = nwb.create_electrode_group(name="g", description="", location="x", device=dev)
    for _ in range(2):
        nwb.add_electrode(group=grp, location="x")
    data = np.zeros((100, 2)) if data is None else data
    for k in range(n_series):
        region = nwb.create_electrode_table_region([0, 1], "e")
        kw = dict(timestamps=timestamps) if timestamps is not None else dict(rate=rate)
        nwb.add_acquisition(ElectricalSeries(name=f"es{k}", data=data, electrodes=region, **kw))
    return nwb


def _write(nwb, path):
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


def _text_file(tmp):
    p = tmp / "notes.nwb"
    p.write_text("not an HDF5 file")
    return p


def _plain_hdf5(tmp):
    p = tmp / "plain.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    return p


def _truncated(tmp):
    p = _write(_units([0.1, 0.2]), tmp / "whole.nwb")
    cut = tmp / "truncated.nwb"
    cut.write_bytes(p.read_bytes()[:4096])
    return cut


def _empty_units():
    nwb = mock_NWBFile()
    nwb.units = Units(name="units", description="no units")
    return nwb


def _trials(stops, **kw):
    nwb = _units([0.1, 0.6, 1.6, 2.6])
    for k, s in enumerate(stops):
        nwb.add_trial(start_time=float(k), stop_time=s)
    return nwb


def _real(name):
    p = NWB_DIR / name
    if not p.is_file():
        pytest.skip(f"shared test file {p} not found (../shared/data/nwb is absent)")
    return p


def _disjoint_obs():
    nwb = mock_NWBFile()
    nwb.add_unit(spike_times=[0.5], obs_intervals=[[0.0, 1.0]])
    nwb.add_unit(spike_times=[2.5], obs_intervals=[[2.0, 3.0]])
    return nwb


# (id, action(tmp_path), expected exception or warning class, message regex)
CASES = [
    ("not-hdf5", lambda tmp: read_units(_text_file(tmp), 0.01),
     NWBReadError, r"is not an HDF5 file, so it cannot be an NWB 2 file"),
    ("hdf5-not-nwb", lambda tmp: read_lfp(_plain_hdf5(tmp)),
     NWBReadError, r"is an HDF5 file but not an NWB 2 file"),
    ("truncated-file", lambda tmp: read_units(_truncated(tmp), 0.01),
     NWBReadError, r"(truncated|could not read|cannot open)"),
    ("missing-file", lambda tmp: read_units(tmp / "nope.nwb", 0.01),
     FileNotFoundError, r"no file at .*nope\.nwb; check the path"),
    ("info-not-hdf5", lambda tmp: file_info(_text_file(tmp)),
     NWBReadError, r"is not an HDF5 file"),
    ("extension-not-installed",
     lambda tmp: read_units(_real("ndx_events_test_events.nwb"), 0.01),
     NWBReadError, r"extension namespace\(s\) ndx-events .*`pip install ndx-events`"),
    ("no-units-table", lambda tmp: read_units(mock_NWBFile(), 0.01),
     NWBReadError, r"has no Units table \(/units\).*use read_lfp"),
    ("empty-units-table", lambda tmp: read_units(_empty_units(), 0.01),
     NWBReadError, r"Units table of .* is empty \(0 units\)"),
    ("unit-without-spikes", lambda tmp: read_units(_units([0.1, 0.5], []), 0.1),
     NWBReadWarning, r"1 of 2 units have no spikes .*columns are all zeros"),
    ("no-spikes-at-all", lambda tmp: read_units(_units([], []), 0.1),
     NWBReadError, r"no spikes at all; give interval="),
    ("nan-spike-times", lambda tmp: read_units(_units([0.1, np.nan]), 0.1),
     NWBReadError, r"NaN or infinite spike times"),
    ("bin-size-zero", lambda tmp: read_units(_units([0.1, 0.5]), 0.0),
     NWBReadError, r"bin_size must be a positive number of seconds; got 0\.0"),
    ("bin-size-negative", lambda tmp: read_lfp(_series(), chunk_seconds=-1),
     NWBReadError, r"chunk_seconds must be a positive number"),
    ("bin-size-not-number", lambda tmp: read_units(_units([0.1, 0.5]), "10ms"),
     NWBReadError, r"bin_size must be a number of seconds"),
    ("bin-size-longer-than-recording", lambda tmp: read_units(_units([0.1, 0.5]), 2.0),
     NWBReadError, r"bin_size=2 s is longer than the recording span .*0\.4 s"),
    ("bin-size-longer-than-interval",
     lambda tmp: read_units(_units([0.1, 0.5]), 2.0, interval=(0, 1)),
     NWBReadError, r"longer than the interval"),
    ("bin-size-longer-than-spiketrains",
     lambda tmp: from_spiketrains([__import__("neo").SpikeTrain([0.1], units="s", t_stop=1.0)],
                                  5.0),
     NWBReadError, r"longer than the spike trains' span"),
    ("unknown-unit-ids", lambda tmp: read_units(_units([0.1], [0.2]), 0.1, units=[0, 7]),
     NWBReadError, r"unit ids \[7\] are not in the Units table"),
    ("units-callable-not-mask",
     lambda tmp: read_units(_units([0.1], [0.2]), 0.1, units=lambda df: [1, 2]),
     NWBReadError, r"must return a boolean mask with one entry per row"),
    ("units-unknown-column", lambda tmp: read_units(_units([0.1]), 0.1, units="good"),
     NWBReadError, r"Units table has no column 'good'"),
    ("reversed-interval", lambda tmp: read_units(_units([0.1]), 0.1, interval=(2, 1)),
     NWBReadError, r"interval must satisfy t0 < t1"),
    ("never-all-observed", lambda tmp: read_units(_disjoint_obs(), 0.1),
     NWBReadError, r"never all observed at the same time.*obs_intervals='ignore'"),
    ("no-trials-table", lambda tmp: read_units(_units([0.1, 0.9]), 0.1, trials=True),
     NWBReadError, r"no trials table \(/intervals/trials\)"),
    ("nan-trial-stops", lambda tmp: read_units(_trials([1.0, np.nan, 3.0]), 0.1, trials=True),
     NWBReadWarning, r"1 of 3 selected trials have NaN start or stop times and were skipped"),
    ("align-without-window",
     lambda tmp: read_units(_trials([1.0]), 0.1, trials=True, align_to="start_time"),
     NWBReadError, r"needs trial_window=\(before, after\)"),
    ("window-without-trials", lambda tmp: read_units(_trials([1.0]), 0.1, trial_window=(0, 1)),
     NWBReadError, r"apply to trials; pass trials=True"),
    ("trial-filter-unknown-column",
     lambda tmp: read_units(_trials([1.0]), 0.1, trials=True, trial_filter="split"),
     NWBReadError, r"trials table has no column 'split'"),
    ("trial-index-out-of-range", lambda tmp: read_units(_trials([1.0]), 0.1, trials=[3]),
     NWBReadError, r"trial indices \[3\] are out of range"),
    ("no-electrical-series", lambda tmp: read_lfp(_units([0.1])),
     NWBReadError, r"has no ElectricalSeries .*use read_units"),
    ("several-series", lambda tmp: read_lfp(_series(n_series=2)),
     NWBReadError, r"several ElectricalSeries qualify: \['/acquisition/es0', "
                   r"'/acquisition/es1'\]; choose one with series="),
    ("unknown-series", lambda tmp: read_lfp(_series(), series="LFP"),
     NWBReadError, r"no ElectricalSeries named 'LFP'; the file has \['/acquisition/es0'\]"),
    ("non-monotonic-timestamps",
     lambda tmp: read_lfp(_series(timestamps=np.r_[0:0.05:0.001, 0.01:0.06:0.001][:100])),
     NWBReadError, r"timestamps of .* are not strictly increasing .*sort or repair"),
    ("irregular-timestamps",
     lambda tmp: read_lfp(_series(timestamps=np.r_[np.arange(50) * 1e-3,
                                                   1.0 + np.arange(50) * 1e-3])),
     NWBReadError, r"irregular .* gap-free stretches with interval="),
    ("nan-samples", lambda tmp: read_lfp(_series(data=np.r_[np.zeros((10, 2)),
                                                            np.full((1, 2), np.nan),
                                                            np.zeros((9, 2))])),
     NWBReadError, r"has NaN or infinite samples \(first at sample 10, selected channel 0\)"),
    ("rate-above-series-rate", lambda tmp: read_lfp(_series(), rate=2000.0),
     NWBReadError, r"rate=2000 Hz is above the series' sampling rate \(1000 Hz\)"),
    ("band-above-nyquist", lambda tmp: read_lfp(_series(), rate=100.0, band=(1.0, 80.0)),
     NWBReadError, r"high edge 80 Hz must be below the Nyquist frequency \(50 Hz\)"),
    ("channels-out-of-range", lambda tmp: read_lfp(_series(), channels=[0, 5]),
     NWBReadError, r"channels \[5\] are out of range: .* has 2 channels"),
    ("unknown-electrodes", lambda tmp: read_lfp(_series(), electrodes=[42]),
     NWBReadError, r"electrode ids \[42\] are not among the electrodes"),
    ("threads-negative", lambda tmp: read_lfp(_series(), threads=-1),
     NWBReadError, r"threads must be None or an integer >= 0"),
]


@pytest.mark.filterwarnings("ignore:ndx-events.extensions defines:UserWarning")
@pytest.mark.parametrize("action, expected, match", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, action, expected, match):
    if issubclass(expected, Warning):
        with pytest.warns(expected, match=match):
            action(tmp_path)
    else:
        with pytest.raises(expected, match=match) as err:
            action(tmp_path)
        assert isinstance(err.value, NWBReadError)  # FileNotFoundError cases too


@pytest.mark.filterwarnings("ignore:ndx-events.extensions defines:UserWarning")
def test_library_errors_are_chained():
    path = NWB_DIR / "ndx_events_test_events.nwb"
    if not path.is_file():
        pytest.skip(f"shared test file {path} not found")
    with pytest.raises(NWBReadError) as err:
        read_lfp(path)
    assert err.value.__cause__ is not None  # the hdmf error stays below the clear message
