"""Tests of nwb_dsr.io.read_lfp: conversion to volts, anti-aliased decimation, band-pass,
chunked reading against whole-signal references, series discovery, selections, trials.

These test the reading machinery itself, so they read with ``preprocess=False`` (``read_raw``):
values in volts at the series' rate unless ``rate``/``band``/``zscore`` are given. The default
preprocessing is tested in test_lfp_preprocess.py."""
from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest
from scipy import signal

pynwb = pytest.importorskip("pynwb")
from hdmf.backends.hdf5 import H5DataIO  # noqa: E402
from pynwb import NWBHDF5IO  # noqa: E402
from pynwb.ecephys import LFP, ElectricalSeries  # noqa: E402
from pynwb.testing.mock.file import mock_NWBFile  # noqa: E402

from nwb_dsr.io import NWBReadError, NWBReadWarning, read_lfp  # noqa: E402
from nwb_dsr.io import lfp as lfp_module  # noqa: E402


def read_raw(*args, **kwargs):
    """read_lfp without the default preprocessing (the reader's raw path)."""
    return read_lfp(*args, preprocess=False, **kwargs)


FS = 1000.0


def _electrodes(nwb, n, locations=None):
    dev = nwb.create_device(name="probe")
    grp = nwb.create_electrode_group(name="shank", description="", location="brain", device=dev)
    for k in range(n):
        nwb.add_electrode(group=grp, location=(locations[k] if locations else "CA1"), id=100 + k)
    return nwb.create_electrode_table_region(list(range(n)), "channels")


def _lfp_file(data, *, rate=FS, in_processing=True, name="LFP_series", conversion=1.0,
              offset=0.0, channel_conversion=None, timestamps=None, locations=None,
              starting_time=0.0):
    nwb = mock_NWBFile()
    region = _electrodes(nwb, data.shape[1], locations)
    kw = dict(timestamps=timestamps) if timestamps is not None else dict(
        rate=rate, starting_time=starting_time)
    if in_processing:  # attach the container first so the region shares the file as ancestor
        lfp = LFP(name="LFP")
        nwb.create_processing_module("ecephys", "processed").add(lfp)
    es = ElectricalSeries(name=name, data=data, electrodes=region, conversion=conversion,
                          offset=offset, channel_conversion=channel_conversion, **kw)
    if in_processing:
        lfp.add_electrical_series(es)
    else:
        nwb.add_acquisition(es)
    return nwb


def _amplitude(x, fs, f):
    """Amplitude of the f-Hz component of x (least squares on sin/cos)."""
    t = np.arange(x.size) / fs
    A = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t), np.ones_like(t)], 1)
    c = np.linalg.lstsq(A, x, rcond=None)[0]
    return float(np.hypot(c[0], c[1]))


def test_conversion_offset_channel_conversion_in_volts():
    rng = np.random.default_rng(0)
    raw = rng.integers(-2000, 2000, size=(500, 3)).astype(np.int16)
    cc = np.array([1.0, 2.0, 0.5])
    nwb = _lfp_file(raw, conversion=1e-6, offset=0.01, channel_conversion=cc)
    obs = read_raw(nwb)
    assert obs.kind == "continuous" and obs.bin_size == pytest.approx(1e-3)
    assert obs.data[0].dtype == np.float32  # 16-bit samples: float32 holds their precision
    np.testing.assert_allclose(obs.data[0], raw * 1e-6 * cc + 0.01, rtol=3e-7)
    np.testing.assert_array_equal(obs.ids, [100, 101, 102])
    assert obs.provenance["object"] == "/processing/ecephys/LFP/LFP_series"
    assert obs.provenance["unit"] == "volts"
    np.testing.assert_allclose(obs.times(0)[:3], [0.0, 0.001, 0.002])


def test_decimated_sine_keeps_amplitude_and_frequency_and_rejects_alias():
    t = np.arange(20000) / FS
    x = 2.0 * np.sin(2 * np.pi * 7.0 * t) + 1.0 * np.sin(2 * np.pi * 290.0 * t)
    nwb = _lfp_file(x[:, None], in_processing=False)
    obs = read_raw(nwb, rate=100.0)
    y = obs.data[0][:, 0]
    assert y.size == 2000 and obs.bin_size == pytest.approx(0.01)
    core = y[100:-100]  # away from the ends
    assert _amplitude(core, 100.0, 7.0) == pytest.approx(2.0, rel=1e-3)
    f, p = signal.periodogram(core, fs=100.0)
    assert f[np.argmax(p)] == pytest.approx(7.0, abs=0.1)
    # 290 Hz would alias to 10 Hz without the anti-alias filter
    assert _amplitude(core, 100.0, 10.0) < 1e-3


def test_band_pass_removes_out_of_band_sine():
    t = np.arange(30000) / FS
    x = np.sin(2 * np.pi * 3.0 * t) + 0.5 * np.sin(2 * np.pi * 60.0 * t)
    obs = read_raw(_lfp_file(x[:, None]), rate=250.0, band=(40.0, 80.0))
    core = obs.data[0][500:-500, 0]
    assert _amplitude(core, 250.0, 60.0) == pytest.approx(0.5, rel=1e-2)
    assert _amplitude(core, 250.0, 3.0) < 1e-3
    assert "sosfiltfilt" in obs.provenance["filter"]


def _write(nwb, path):
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


@pytest.mark.parametrize("dtype, rate", [("int16", 100.0), ("float64", 400.0), ("int16", None)])
def test_chunked_file_read_equals_in_memory_reference(tmp_path, dtype, rate):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(24000, 3)).cumsum(0) * 20).astype(dtype)
    data = H5DataIO(x, chunks=(700, 3), compression="gzip")
    path = _write(_lfp_file(data, conversion=2e-6, offset=0.1,
                            channel_conversion=np.array([1.0, 3.0, 0.5])), tmp_path / "x.nwb")
    volts = x * 2e-6 * np.array([1.0, 3.0, 0.5]) + 0.1
    ratio = Fraction(rate or FS) / Fraction(FS)
    ref = volts if rate is None else signal.resample_poly(
        volts, ratio.numerator, ratio.denominator, axis=0, padtype="antireflect")
    fs_out = rate or FS
    sos = signal.butter(4, [2.0, 30.0], btype="bandpass", fs=fs_out, output="sos")
    ref_band = signal.sosfiltfilt(sos, ref, axis=0)
    scale = np.abs(ref).max()
    for chunk in (0.37, 1e4):  # blocks smaller than the HDF5 chunks; the whole signal
        obs = read_raw(path, rate=rate, chunk_seconds=chunk)
        np.testing.assert_allclose(obs.data[0], ref, rtol=0, atol=1e-6 * scale)
        band = read_raw(path, rate=rate, band=(2.0, 30.0), chunk_seconds=chunk)
        np.testing.assert_allclose(band.data[0], ref_band, rtol=0, atol=1e-6 * scale)


def test_memory_is_bounded_reads_are_blocks(tmp_path, monkeypatch):
    x = np.zeros((50000, 4), dtype=np.int16)
    path = _write(_lfp_file(H5DataIO(x, chunks=(1000, 4))), tmp_path / "big.nwb")
    seen = []
    orig = lfp_module._Source._fetch

    def spy(self, a, b, *buf):
        seen.append(b - a)
        return orig(self, a, b, *buf)

    monkeypatch.setattr(lfp_module._Source, "_fetch", spy)
    obs = read_raw(path, rate=100.0, chunk_seconds=2.0)
    assert obs.n_bins == 5000
    assert max(seen) <= 2.0 * FS + 2 * 1000 + 250  # one block + HDF5 chunk rounding + filter
    assert sum(seen) <= 50000 + 1000 * 2  # every chunk read about once


@pytest.mark.parametrize("rate", [400.0, 100.0, 125.0, 750.0, 300.0])
def test_resampling_in_any_step_equals_resample_poly(monkeypatch, rate):
    """Ratios 2/5, 1/10, 1/8, 3/4, 3/10 on a length that fills no whole chunk, a channel subset,
    steps from one group of outputs (the cache budget forced to nothing) to the whole signal."""
    rng = np.random.default_rng(int(rate))
    x = (rng.normal(size=(4007, 5)).cumsum(0) * 20).astype("int16")
    cols = [4, 1, 2]
    nwb = _lfp_file(x, conversion=1e-6, offset=0.01, channel_conversion=np.arange(1.0, 6.0))
    volts = x[:, cols] * 1e-6 * np.array([5.0, 2.0, 3.0]) + 0.01
    ratio = Fraction(rate) / Fraction(FS)
    ref = signal.resample_poly(volts, ratio.numerator, ratio.denominator, axis=0,
                               padtype="antireflect")
    for cache in (1, lfp_module._CACHE_BYTES):
        monkeypatch.setattr(lfp_module, "_CACHE_BYTES", cache)
        for chunk in (0.05, 1e4):
            obs = read_raw(nwb, rate=rate, channels=cols, chunk_seconds=chunk)
            np.testing.assert_allclose(obs.data[0], ref, rtol=0, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("rate", [400.0, 100.0])
def test_interval_of_odd_chunked_file_is_a_cut_of_the_whole_read(tmp_path, rate):
    """HDF5 chunks of an odd number of rows, a contiguous channel subset, an interval starting
    inside a chunk: the slabs give the same samples as a whole-recording resample_poly."""
    rng = np.random.default_rng(8)
    x = (rng.normal(size=(9001, 4)).cumsum(0) * 20).astype("int16")
    path = _write(_lfp_file(H5DataIO(x, chunks=(333, 4))), tmp_path / "odd.nwb")
    ratio = Fraction(rate) / Fraction(FS)
    ref = signal.resample_poly(x[:, 1:3].astype(float), ratio.numerator, ratio.denominator,
                               axis=0, padtype="antireflect")
    k0 = int(1000 * ratio)                                    # output at t = 1.0 s
    for chunk in (0.3, 1e4):
        obs = read_raw(path, rate=rate, channels=[1, 2], interval=(1.0, 7.5), chunk_seconds=chunk)
        want = ref[k0:k0 + obs.lengths[0]]
        assert obs.lengths[0] == int(6500 * ratio)
        np.testing.assert_allclose(obs.data[0], want, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_resampling_ratio_non_integer():
    t = np.arange(5000) / FS
    x = np.sin(2 * np.pi * 5 * t)[:, None]
    obs = read_raw(_lfp_file(x), rate=400.0)
    ref = signal.resample_poly(x, 2, 5, axis=0, padtype="antireflect")
    np.testing.assert_allclose(obs.data[0], ref, atol=1e-12)
    assert obs.bin_size == pytest.approx(1 / 400)


def test_timestamps_equal_rate_based_read():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 2))
    ts = 5.0 + np.arange(3000) / FS
    a = read_raw(_lfp_file(x, timestamps=ts), rate=250.0, interval=(6.0, 7.0))
    b = read_raw(_lfp_file(x, starting_time=5.0), rate=250.0, interval=(6.0, 7.0))
    np.testing.assert_allclose(a.data[0], b.data[0])
    assert a.times(0)[0] == pytest.approx(6.0)
    assert b.times(0)[0] == pytest.approx(6.0)


def test_series_discovery_prefers_lfp_container_and_accepts_names():
    x = np.ones((100, 2))
    nwb = _lfp_file(x)  # /processing/ecephys/LFP/LFP_series
    region = nwb.create_electrode_table_region([0, 1], "raw channels")
    nwb.add_acquisition(ElectricalSeries(name="raw", data=np.zeros((300, 2)), electrodes=region,
                                         rate=FS))
    assert read_raw(nwb).provenance["object"] == "/processing/ecephys/LFP/LFP_series"
    assert read_raw(nwb, series="raw").provenance["object"] == "/acquisition/raw"
    assert read_raw(nwb, series="/acquisition/raw").n_bins == 300


def test_channel_and_electrode_selection_and_info():
    x = np.arange(40, dtype=float).reshape(10, 4)
    nwb = _lfp_file(x, locations=["CA1", "CA3", "DG", "CTX"])
    by_index = read_raw(nwb, channels=[3, 1])
    by_id = read_raw(nwb, electrodes=[103, 101])
    np.testing.assert_array_equal(by_index.data[0], x[:, [3, 1]])
    np.testing.assert_array_equal(by_id.data[0], x[:, [3, 1]])
    np.testing.assert_array_equal(by_id.ids, [103, 101])
    assert list(by_id.channel_info["location"]) == ["CTX", "CA3"]
    assert list(read_raw(nwb, channels=[1, 2]).channel_info["location"]) == ["CA3", "DG"]


def test_trials_segments_are_cuts_of_the_whole_filtered_recording():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20000, 2))
    nwb = _lfp_file(x)
    nwb.add_trial(start_time=2.0, stop_time=3.0)
    nwb.add_trial(start_time=9.0, stop_time=9.5)
    nwb.add_trial(start_time=19.9, stop_time=25.0)  # runs past the recording
    with pytest.warns(NWBReadWarning, match="1 trial windows are not inside"):
        obs = read_raw(nwb, rate=100.0, band=(1.0, 20.0), trials=True)
    whole = read_raw(nwb, rate=100.0, band=(1.0, 20.0))
    assert obs.lengths == [100, 50]
    for k, t0 in enumerate([2.0, 9.0]):
        i = int(round(t0 * 100))
        np.testing.assert_allclose(obs.data[k], whole.data[0][i:i + obs.lengths[k]],
                                   atol=1e-9)
        assert obs.times(k)[0] == pytest.approx(t0)
    assert obs.provenance["selection"]["trials"] == [0, 1]


def test_zscore():
    rng = np.random.default_rng(4)
    x = rng.normal(3.0, 2.0, size=(4000, 3))
    obs = read_raw(_lfp_file(x), rate=250.0, zscore=True)
    y = obs.concatenated()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-12)
    assert obs.provenance["unit"] == "z-score"


def test_file_is_closed_after_reading(tmp_path):
    import h5py

    path = _write(_lfp_file(np.ones((100, 2))), tmp_path / "c.nwb")
    read_raw(path)
    with h5py.File(path, "a"):  # would fail if the reader had left the file open for reading
        pass


def test_interval_outside_recording_is_an_error():
    with pytest.raises(NWBReadError, match="holds no samples"):
        read_raw(_lfp_file(np.ones((100, 1))), interval=(5.0, 6.0))


# ---- gzip chunks decoded by worker threads -------------------------------------------------

def _inflate_threads():
    return [t for t in threading.enumerate() if t.name.startswith("nwb_dsr-inflate")]


def _h5py_only(monkeypatch):
    """read_lfp reading every chunk through h5py (the reference for the decoded chunks)."""
    monkeypatch.setattr(lfp_module._ChunkRows, "of", classmethod(lambda cls, *a: None))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("inflater", ["libdeflate", "zlib"])
def test_gzip_chunks_decoded_in_threads_equal_the_h5py_read(tmp_path, monkeypatch, shuffle,
                                                           inflater):
    """Chunks of 700 rows x 2 channels (a row of chunks spans 3 of them, the last cut), any
    channel selection, an interval, a band: the decoded chunks, in 0 to 3 threads, give the
    same output bit for bit as h5py reading them, and no thread is left running."""
    if inflater == "zlib":
        monkeypatch.setattr(lfp_module._Inflate, "_lib", False)
    elif not lfp_module._Inflate.libdeflate():
        pytest.skip("libdeflate is not installed")
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(9000, 5)).cumsum(0) * 20).astype("int16")
    data = H5DataIO(x, chunks=(700, 2), compression="gzip", shuffle=shuffle)
    path = _write(_lfp_file(data, conversion=1e-6), tmp_path / "gz.nwb")
    cases = [dict(rate=100.0), dict(rate=250.0, channels=[1, 2, 3], interval=(1.1, 7.3)),
             dict(rate=None, channels=[4, 0]), dict(rate=200.0, band=(2.0, 40.0),
                                                   chunk_seconds=0.3)]
    decoded = []
    orig = lfp_module._ChunkRows._decode

    def spy(self, i):
        decoded.append(orig(self, i))
        return decoded[-1]

    monkeypatch.setattr(lfp_module._ChunkRows, "_decode", spy)
    got = {(k, t): read_raw(path, threads=t, **kw).data[0]
           for k, kw in enumerate(cases) for t in (0, 1, 3)}
    assert decoded and all(d is not None for d in decoded)    # none fell back to h5py
    assert not _inflate_threads()
    with monkeypatch.context() as m:
        _h5py_only(m)
        for k, kw in enumerate(cases):
            ref = read_raw(path, **kw).data[0]
            for t in (0, 1, 3):
                np.testing.assert_array_equal(got[k, t], ref)


def _corrupt_chunk(path, row):
    import h5py
    with h5py.File(path, "r+") as f:
        d = f["processing/ecephys/LFP/LFP_series/data"]
        d.id.write_direct_chunk((row, 0), b"\x78\x9c not a deflate stream" * 8)


@pytest.mark.parametrize("threads", [0, 2])
def test_corrupt_gzip_chunk_is_a_read_error_and_threads_end(tmp_path, threads):
    x = (np.random.default_rng(4).normal(size=(20000, 3)) * 100).astype("int16")
    path = _write(_lfp_file(H5DataIO(x, chunks=(1000, 3), compression="gzip")),
                  tmp_path / "bad.nwb")
    _corrupt_chunk(path, 5000)
    with pytest.raises(NWBReadError, match=r"LFP_series in .* could not be read \(.*\); check "
                                           r"the file with nwbinspector"):
        read_raw(path, rate=100.0, threads=threads)
    assert not _inflate_threads()


def test_error_in_the_caller_ends_the_decoding_threads(tmp_path):
    """NaN samples found by the calling thread while worker threads decode the chunks ahead:
    the reader's error, and no thread left running."""
    x = np.random.default_rng(5).normal(size=(40000, 3)).astype("float32")
    x[3000, 1] = np.nan
    path = _write(_lfp_file(H5DataIO(x, chunks=(500, 3), compression="gzip")),
                  tmp_path / "nan.nwb")
    with pytest.raises(NWBReadError, match=r"NaN or infinite samples \(first at sample 3000, "
                                           r"selected channel 1\)"):
        read_raw(path, rate=100.0, threads=2)
    assert not _inflate_threads()


def test_default_threads_follow_the_cores(monkeypatch):
    monkeypatch.setattr(lfp_module.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert lfp_module._threads(None) == 0                # one core: all in the caller's thread
    monkeypatch.setattr(lfp_module.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert lfp_module._threads(None) == 1
    assert lfp_module._threads(3) == 3
