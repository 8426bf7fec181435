"""Tests of nwb_dsr.io.read_units: binning against np.histogram, selections, trials,
obs_intervals, metadata and provenance."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO  # noqa: E402
from pynwb.testing.mock.file import mock_NWBFile  # noqa: E402

from nwb_dsr import Observations  # noqa: E402
from nwb_dsr.io import NWBReadWarning, read_units  # noqa: E402
from nwb_dsr.io.units import bin_spike_times  # noqa: E402


def _hist(t, edges):
    """Naive reference: half-open bins [e_k, e_k+1) (np.histogram closes the last one)."""
    t = np.asarray(t)
    return np.histogram(t[t < edges[-1]], edges)[0]


def _random_units(rng, n_units=6, duration=20.0, rate=15.0, bin_size=0.01):
    units = []
    for _ in range(n_units):
        t = np.sort(rng.uniform(0.3, duration, rng.poisson(rate * duration)))
        # spikes exactly on bin edges (common with sample-quantised times)
        t = np.sort(np.concatenate([t, np.arange(1, 40) * bin_size * 7]))
        units.append(t)
    return units


def _file_with_units(units, **cols):
    nwb = mock_NWBFile()
    for name in cols:
        nwb.add_unit_column(name, f"{name} of the unit")
    for k, t in enumerate(units):
        nwb.add_unit(spike_times=t, **{c: v[k] for c, v in cols.items()})
    return nwb


def test_counts_equal_histogram_reference():
    rng = np.random.default_rng(0)
    units = _random_units(rng)
    obs = read_units(_file_with_units(units), 0.01)
    assert isinstance(obs, Observations) and obs.kind == "counts"
    assert obs.n_segments == 1 and obs.n_channels == len(units)
    start = obs.start_times[0]
    assert start == pytest.approx(np.floor(min(t[0] for t in units) / 0.01) * 0.01)
    edges = start + np.arange(obs.n_bins + 1) * 0.01
    for u, t in enumerate(units):
        np.testing.assert_array_equal(obs.data[0][:, u], _hist(t, edges))
    assert obs.data[0].sum() == sum(t.size for t in units)  # every spike counted once
    np.testing.assert_array_equal(obs.ids, np.arange(len(units)))
    assert obs.provenance["object"] == "/units"
    assert obs.provenance["selection"]["unit_ids"] == list(range(len(units)))


def test_bin_spike_times_overlapping_segments_against_reference():
    rng = np.random.default_rng(1)
    times = [np.sort(rng.uniform(0, 10, 300)) for _ in range(3)] + [np.array([])]
    starts = np.array([0.5, 0.7, 5.0, 9.0])
    nbins = np.array([30, 20, 1, 7])
    out = bin_spike_times(times, starts, nbins, 0.05)
    assert out.shape == (nbins.sum(), 4) and out.dtype == np.float32
    off = np.concatenate([[0], np.cumsum(nbins)])
    for s in range(starts.size):
        edges = starts[s] + np.arange(nbins[s] + 1) * 0.05
        for u, t in enumerate(times):
            np.testing.assert_array_equal(out[off[s]:off[s + 1], u], _hist(t, edges))


def test_read_from_file_path_and_quantity_bin_size(tmp_path):
    pq = pytest.importorskip("quantities")
    rng = np.random.default_rng(2)
    units = _random_units(rng, n_units=3)
    nwb = _file_with_units(units)
    path = tmp_path / "units.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    obs = read_units(path, 10 * pq.ms, units=[2, 0])
    ref = read_units(nwb, 0.01, units=[2, 0])
    np.testing.assert_array_equal(obs.data[0], ref.data[0])
    np.testing.assert_array_equal(obs.ids, [2, 0])
    assert obs.bin_size == pytest.approx(0.01)
    assert obs.provenance["source"] == str(path.resolve())


def test_unit_selection_by_column_and_callable_and_channel_info():
    rng = np.random.default_rng(3)
    units = _random_units(rng, n_units=4)
    nwb = _file_with_units(units, quality=["good", "mua", "good", "noise"],
                           location=["CA1", "CA1", "CA3", "CA3"],
                           is_single=[True, False, True, False])
    by_fn = read_units(nwb, 0.02, units=lambda df: df.quality == "good")
    by_col = read_units(nwb, 0.02, units="is_single")
    np.testing.assert_array_equal(by_fn.ids, [0, 2])
    np.testing.assert_array_equal(by_col.ids, [0, 2])
    np.testing.assert_array_equal(by_fn.data[0], by_col.data[0])
    assert list(by_fn.channel_info["location"]) == ["CA1", "CA3"]
    assert list(by_fn.channel_info["quality"]) == ["good", "good"]
    assert "spike_times" not in by_fn.channel_info


def test_electrode_location_is_resolved():
    nwb = mock_NWBFile()
    dev = nwb.create_device(name="probe")
    grp = nwb.create_electrode_group(name="g", description="", location="brain", device=dev)
    for loc in ("CA1", "CA3", "DG"):
        nwb.add_electrode(group=grp, location=loc)
    nwb.add_unit(spike_times=[0.1, 0.5, 0.9], electrodes=[2])
    nwb.add_unit(spike_times=[0.2, 0.4], electrodes=[0, 1])
    obs = read_units(nwb, 0.1)
    assert list(obs.channel_info["electrode_location"]) == ["DG", "CA1"]


def test_interval_window():
    units = [np.array([0.05, 1.0, 1.01, 1.5, 2.99, 3.0, 3.5]), np.array([2.0, 2.05])]
    obs = read_units(_file_with_units(units), 0.1, interval=(1.0, 3.0))
    assert obs.start_times[0] == 1.0 and obs.n_bins == 20
    edges = 1.0 + np.arange(21) * 0.1
    for u, t in enumerate(units):
        np.testing.assert_array_equal(obs.data[0][:, u], _hist(t, edges))
    assert obs.provenance["selection"]["interval"] == [1.0, 3.0]


def _with_trials(units, trials, **cols):
    nwb = _file_with_units(units)
    for name in cols:
        nwb.add_trial_column(name, name)
    for k, (a, b) in enumerate(trials):
        nwb.add_trial(start_time=a, stop_time=b, **{c: v[k] for c, v in cols.items()})
    return nwb


def test_trials_one_segment_per_trial():
    rng = np.random.default_rng(4)
    units = _random_units(rng, n_units=3, duration=10)
    trials = [(1.0, 2.0), (3.0, 3.55), (6.0, 9.0)]
    obs = read_units(_with_trials(units, trials), 0.05, trials=True)
    assert obs.lengths == [20, 11, 60]
    np.testing.assert_allclose(obs.start_times, [1.0, 3.0, 6.0])
    for k, (a, b) in enumerate(trials):
        edges = a + np.arange(obs.lengths[k] + 1) * 0.05
        for u, t in enumerate(units):
            np.testing.assert_array_equal(obs.data[k][:, u], _hist(t, edges))
    assert obs.provenance["selection"]["trials"] == [0, 1, 2]
    sub = read_units(_with_trials(units, trials), 0.05, trials=[2, 0])
    assert sub.lengths == [20, 60] and sub.provenance["selection"]["trials"] == [0, 2]


def test_trials_aligned_to_event_and_filtered():
    rng = np.random.default_rng(5)
    units = _random_units(rng, n_units=2, duration=12)
    trials = [(1.0, 3.0), (4.0, 6.0), (7.0, 9.0), (9.5, 11.5)]
    nwb = _with_trials(units, trials, go_cue_time=[1.5, 4.7, 7.2, 10.0],
                       split=[True, False, True, True], block=["a", "b", "a", "b"])
    obs = read_units(nwb, 0.1, trials="all", align_to="go_cue_time", trial_window=(-0.5, 1.0),
                     trial_filter="split")
    assert obs.lengths == [15, 15, 15]
    np.testing.assert_allclose(obs.start_times, [1.0, 6.7, 9.5])
    for k, t0 in enumerate([1.0, 6.7, 9.5]):
        edges = t0 + np.arange(16) * 0.1
        np.testing.assert_array_equal(obs.data[k][:, 0], _hist(units[0], edges))
    assert obs.provenance["selection"]["align_to"] == "go_cue_time"
    by_value = read_units(nwb, 0.1, trials=True, trial_filter={"block": "b"})
    assert by_value.provenance["selection"]["trials"] == [1, 3]
    by_fn = read_units(nwb, 0.1, trials=lambda df: df.block == "a")
    assert by_fn.provenance["selection"]["trials"] == [0, 2]
    inside = read_units(nwb, 0.1, trials=True, interval=(3.5, 9.2))
    assert inside.provenance["selection"]["trials"] == [1, 2]


def test_nan_stop_trials_are_skipped_with_count():
    units = [np.array([0.5, 1.5, 2.5])]
    nwb = _with_trials(units, [(0.0, 1.0), (1.0, np.nan), (2.0, 3.0)])
    with pytest.warns(NWBReadWarning, match="1 of 3 selected trials have NaN"):
        obs = read_units(nwb, 0.5, trials=True)
    assert obs.n_segments == 2 and obs.provenance["selection"]["trials"] == [0, 2]


def test_obs_intervals_split_into_observed_pieces():
    nwb = mock_NWBFile()
    a = np.array([0.5, 1.5, 2.5, 4.5, 6.5, 8.5])
    b = np.array([0.6, 1.6, 5.5, 6.6])
    nwb.add_unit(spike_times=a, obs_intervals=[[0.0, 3.0], [4.0, 9.0]])
    nwb.add_unit(spike_times=b, obs_intervals=[[1.0, 7.0]])
    obs = read_units(nwb, 0.5)
    # all observed: [1, 3) and [4, 7)
    np.testing.assert_allclose(obs.start_times, [1.0, 4.0])
    assert obs.lengths == [4, 6]
    assert obs.data[0][:, 0].sum() == 2 and obs.data[1][:, 0].sum() == 2   # 1.5, 2.5 / 4.5, 6.5
    assert obs.data[0][:, 1].sum() == 1 and obs.data[1][:, 1].sum() == 2   # 1.6 / 5.5, 6.6
    assert obs.provenance["selection"]["obs_intervals"] == "split"
    whole = read_units(nwb, 0.5, obs_intervals="ignore")
    assert whole.n_segments == 1 and whole.data[0].sum() == a.size + b.size
    with pytest.warns(NWBReadWarning, match="1 of 2 units have no spikes"):
        part = read_units(nwb, 0.5, interval=(2.0, 5.0))
    np.testing.assert_allclose(part.start_times, [2.0, 4.0])
    assert part.lengths == [2, 2]


def test_obs_intervals_drop_unobserved_trials():
    nwb = mock_NWBFile()
    nwb.add_unit(spike_times=[0.5, 2.5], obs_intervals=[[0.0, 2.0]])
    nwb.add_unit(spike_times=[0.7, 1.2], obs_intervals=[[0.0, 10.0]])
    nwb.add_trial(start_time=0.0, stop_time=1.0)
    nwb.add_trial(start_time=1.5, stop_time=2.5)
    with pytest.warns(NWBReadWarning, match="1 trials are not entirely inside"):
        obs = read_units(nwb, 0.5, trials=True)
    assert obs.n_segments == 1 and obs.provenance["selection"]["trials"] == [0]


def test_unsorted_and_silent_units():
    nwb = _file_with_units([np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.3])])
    nwb.add_unit(spike_times=[])
    with pytest.warns(NWBReadWarning, match=r"1 of 3 units have no spikes .*ids \[2\]"):
        obs = read_units(nwb, 0.1)
    edges = obs.start_times[0] + np.arange(obs.n_bins + 1) * 0.1
    np.testing.assert_array_equal(obs.data[0][:, 0], _hist([0.1, 0.5, 0.9], edges))
    assert not obs.data[0][:, 2].any()


def test_read_does_not_touch_nwbfile_in_memory():
    t = np.array([0.3, 0.1, 0.2])
    nwb = _file_with_units([t])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_units(nwb, 0.1)
    np.testing.assert_array_equal(nwb.units["spike_times"][0], [0.3, 0.1, 0.2])
