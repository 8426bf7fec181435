"""Tests of the neo / elephant / pynapple adapters in nwb_dsr.io.adapters."""
from __future__ import annotations

import sys

import numpy as np
import pytest

neo = pytest.importorskip("neo")
pq = pytest.importorskip("quantities")

from nwb_dsr import Observations  # noqa: E402
from nwb_dsr.io import (NWBReadError, from_binned_spiketrain, from_neo,  # noqa: E402
                        from_pynapple, from_spiketrains, to_analogsignal)


def _trains(rng, n=3, t_stop=2.0):
    out = []
    for k in range(n):
        t = np.sort(rng.uniform(0, t_stop, 40))
        out.append(neo.SpikeTrain(t * pq.s, t_start=0 * pq.s, t_stop=t_stop * pq.s,
                                  id=10 + k))
    return out


def _hist(t, t0, n, bs):
    edges = t0 + np.arange(n + 1) * bs
    t = np.asarray(t)
    return np.histogram(t[t < edges[-1]], edges)[0]


def test_from_spiketrains_counts_units_and_quantities():
    rng = np.random.default_rng(0)
    trains = _trains(rng)
    a = from_spiketrains(trains, 0.05)
    b = from_spiketrains(trains, 50 * pq.ms)
    assert a.kind == "counts" and a.data[0].shape == (40, 3)
    np.testing.assert_array_equal(a.data[0], b.data[0])
    np.testing.assert_array_equal(a.ids, [10, 11, 12])
    for u, st in enumerate(trains):
        np.testing.assert_array_equal(a.data[0][:, u], _hist(st.magnitude, 0.0, 40, 0.05))
    ms = neo.SpikeTrain([100.0, 1500.0] * pq.ms, t_stop=2 * pq.s)
    c = from_spiketrains([ms], 0.5)
    assert c.data[0][:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_from_binned_spiketrain_matches_elephant():
    from elephant.conversion import BinnedSpikeTrain

    rng = np.random.default_rng(1)
    trains = _trains(rng)
    bst = BinnedSpikeTrain(trains, bin_size=50 * pq.ms)
    obs = from_binned_spiketrain(bst)
    np.testing.assert_array_equal(obs.data[0], bst.to_array().T)
    np.testing.assert_array_equal(obs.data[0], from_spiketrains(trains, 0.05).data[0])
    assert obs.bin_size == pytest.approx(0.05) and obs.start_times[0] == 0.0
    ids = [10 + k for k in range(len(trains))]
    assert from_binned_spiketrain(bst, ids=ids).ids.tolist() == ids
    with pytest.raises(NWBReadError, match="give one id per unit"):
        from_binned_spiketrain(bst, ids=ids[:-1])


def test_from_neo_segment_block_and_analogsignal():
    rng = np.random.default_rng(2)
    block = neo.Block()
    for k in range(2):
        seg = neo.Segment()
        seg.spiketrains.extend(_trains(rng))
        seg.analogsignals.append(neo.AnalogSignal(rng.normal(size=(200, 2)), units="mV",
                                                  sampling_rate=100 * pq.Hz))
        block.segments.append(seg)
    counts = from_neo(block, bin_size=0.1)
    assert counts.kind == "counts" and counts.n_segments == 2 and counts.lengths == [20, 20]
    signals = from_neo(block)  # no bin_size: the analog signals
    assert signals.kind == "continuous" and signals.n_channels == 2
    np.testing.assert_allclose(signals.data[1], block.segments[1].analogsignals[0].magnitude)
    assert signals.provenance["units"] == "mV"
    seg_obs = from_neo(block.segments[0], bin_size=0.1)
    np.testing.assert_array_equal(seg_obs.data[0], counts.data[0])
    sig = neo.AnalogSignal(np.ones((50, 3)), units="V", sampling_rate=1 * pq.kHz,
                           t_start=0.5 * pq.s, array_annotations={"channel_ids": [4, 5, 6]})
    obs = from_neo(sig)
    assert obs.bin_size == pytest.approx(1e-3) and obs.times(0)[0] == pytest.approx(0.5)
    np.testing.assert_array_equal(obs.ids, [4, 5, 6])
    with pytest.raises(NWBReadError, match="differs from the AnalogSignal's sampling period"):
        from_neo(sig, bin_size=0.01)
    with pytest.raises(NWBReadError, match="bin_size is needed"):
        from_neo(_trains(rng))


def test_from_pynapple_tsgroup_and_tsdframe():
    nap = pytest.importorskip("pynapple")
    rng = np.random.default_rng(3)
    spikes = {3: np.sort(rng.uniform(0, 10, 50)), 8: np.sort(rng.uniform(0, 10, 30))}
    group = nap.TsGroup({k: nap.Ts(t=v) for k, v in spikes.items()},
                        time_support=nap.IntervalSet([0.0, 6.0], [4.0, 10.0]),
                        metadata={"area": ["CA1", "PFC"]})
    obs = from_pynapple(group, bin_size=0.5)
    assert obs.lengths == [8, 8] and list(obs.ids) == [3, 8]
    np.testing.assert_allclose(obs.start_times, [0.0, 6.0])
    np.testing.assert_array_equal(obs.data[1][:, 0], _hist(spikes[3], 6.0, 8, 0.5))
    assert list(obs.channel_info["area"]) == ["CA1", "PFC"]
    t = np.arange(1000) / 100.0
    frame = nap.TsdFrame(t=t, d=np.stack([np.sin(t), np.cos(t)], 1), columns=["a", "b"])
    cont = from_pynapple(frame)
    assert cont.kind == "continuous" and cont.bin_size == pytest.approx(0.01)
    assert list(cont.ids) == ["a", "b"] and cont.times(0)[0] == pytest.approx(0.0)
    np.testing.assert_allclose(cont.data[0][:, 1], np.cos(t))
    coarse = from_pynapple(frame, bin_size=0.1)
    assert coarse.bin_size == pytest.approx(0.1, rel=1e-3) and coarse.n_bins == 100
    with pytest.raises(NWBReadError, match="bin_size is needed to bin a TsGroup"):
        from_pynapple(group)


def test_from_pynapple_without_pynapple_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynapple", None)  # import pynapple → ImportError
    with pytest.raises(ImportError, match="pip install pynapple"):
        from_pynapple(object(), bin_size=0.1)


def test_to_analogsignal_arrays_lists_and_observations():
    x = np.arange(30, dtype=float).reshape(10, 3)
    sig = to_analogsignal(x, 0.01, t_start=2.0, units="Hz", name="rates",
                          annotations={"model": "plrnn"})
    assert isinstance(sig, neo.AnalogSignal)
    assert float(sig.sampling_rate.rescale("Hz")) == pytest.approx(100.0)
    assert float(sig.t_start.rescale("s")) == 2.0 and sig.units == pq.Hz
    assert sig.name == "rates" and sig.annotations["model"] == "plrnn"
    np.testing.assert_array_equal(sig.magnitude, x)
    sigs = to_analogsignal([x, x[:4]], 10 * pq.ms, t_start=1.0)
    assert [float(s.t_start) for s in sigs] == pytest.approx([1.0, 1.1])
    obs = Observations([x, x[:5]], kind="continuous", bin_size=0.01, start_times=[0.0, 3.0],
                       ids=[7, 8, 9])
    out = to_analogsignal(obs, units="V")
    assert len(out) == 2 and list(out[0].array_annotations["channel_ids"]) == [7, 8, 9]
    back = from_neo(out[1])  # round trip keeps times and values
    assert back.start_times[0] == pytest.approx(3.0)
    np.testing.assert_allclose(back.data[0], x[:5])


def test_elephant_goes_on_from_analogsignal():
    from elephant.spectral import welch_psd

    fs = 200.0
    t = np.arange(2000) / fs
    sig = to_analogsignal(np.sin(2 * np.pi * 12 * t)[:, None], 1 / fs, units="mV")
    freqs, psd = welch_psd(sig, frequency_resolution=1 * pq.Hz)
    assert float(freqs[np.argmax(psd[0])].rescale("Hz")) == pytest.approx(12.0, abs=1.0)
