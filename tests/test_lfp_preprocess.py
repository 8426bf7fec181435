"""The default preprocessing of read_lfp (nwb_dsr.io.preprocess): band, output rate, mains notch,
principal components, z-scoring; each recorded in the provenance and each overridable; on
synthetic series with known content and on the shared real recordings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from pynwb.ecephys import ElectricalSeries  # noqa: E402
from pynwb.testing.mock.file import mock_NWBFile  # noqa: E402

from nwb_dsr.io import NWBReadError, NWBReadWarning, read_lfp  # noqa: E402
from nwb_dsr.io.preprocess import (default_band_and_rate, detect_line_frequency,  # noqa: E402
                                   notch_frequencies, principal_components)

NWB_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nwb"


def _file(x, rate):
    nwb = mock_NWBFile()
    dev = nwb.create_device(name="amp")
    grp = nwb.create_electrode_group(name="g", description="", location="scalp", device=dev)
    for _ in range(x.shape[1]):
        nwb.add_electrode(group=grp, location="scalp")
    region = nwb.create_electrode_table_region(list(range(x.shape[1])), "all")
    nwb.add_acquisition(ElectricalSeries(name="EEG", data=x, electrodes=region, rate=rate,
                                         conversion=1e-6))
    return nwb


def _recording(line=60.0, fs=500.0, seconds=40.0, n_ch=4, seed=0):
    """µV: a 10-Hz rhythm, a 3-Hz rhythm, mains, DC offsets and drift, white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    x = (20 * np.sin(2 * np.pi * 10 * t)[:, None] * rng.uniform(0.5, 1.5, n_ch)
         + 10 * np.sin(2 * np.pi * 3 * t + 1)[:, None]
         + 50 * np.sin(2 * np.pi * line * t)[:, None]
         + 5000 * rng.uniform(-1, 1, n_ch) + 300 * t[:, None] / seconds
         + 5 * rng.normal(size=(t.size, n_ch)))
    return x


def _amplitude(x, fs, f):
    t = np.arange(len(x)) / fs
    A = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t), np.ones_like(t)], 1)
    c = np.linalg.lstsq(A, x, rcond=None)[0]
    return float(np.hypot(c[0], c[1]))


def test_defaults_band_rate_mains_zscore_recorded():
    obs = read_lfp(_file(_recording(), 500.0))
    pre = obs.provenance["preprocess"]
    assert obs.bin_size == pytest.approx(1 / 75.0)
    assert pre["band"] == [0.1, 30.0] and pre["rate"] == pytest.approx(75.0)
    assert pre["notch"] == 60.0 and pre["how"]["notch"] == "detected from the spectrum"
    assert pre["notch_applied_hz"] == []         # 60 Hz lies in the resampler's stop band
    assert pre["zscore"] is True and pre["pca"] is None and obs.n_channels == 4
    assert obs.provenance["unit"] == "z-score"
    y = obs.concatenated()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-9)
    sel = obs.provenance["selection"]
    assert sel["preprocess"] is True and sel["notch"] == 60.0 and sel["band"] == [0.1, 30.0]
    # the 10-Hz rhythm is kept, the drift and offsets are gone
    core = y[200:-200, 0]
    assert _amplitude(core, 75.0, 10.0) > 0.8 * np.sqrt(2) * core.std() * 0.7


def test_raw_reading_is_an_explicit_option():
    x = _recording()
    obs = read_lfp(_file(x, 500.0), preprocess=False)
    assert obs.bin_size == pytest.approx(1 / 500.0)
    np.testing.assert_allclose(obs.data[0], x * 1e-6, rtol=1e-6)  # volts, as stored
    pre = obs.provenance["preprocess"]
    assert pre["enabled"] is False and pre["notch"] is None and pre["band"] is None


@pytest.mark.parametrize("kw, check", [
    ({"band": (1.0, 40.0)}, lambda o, p: p["band"] == [1.0, 40.0] and p["rate"] == 100.0),
    ({"rate": 200.0}, lambda o, p: o.bin_size == pytest.approx(0.005) and p["band"] == [0.1, 30]),
    ({"rate": None}, lambda o, p: p["rate"] == 500.0),
    ({"band": None}, lambda o, p: p["band"] is None and p["rate"] == 500.0),
    ({"notch": None}, lambda o, p: p["notch"] is None and p["how"]["notch"] == "given"),
    ({"zscore": False}, lambda o, p: p["zscore"] is False and o.provenance["unit"] == "volts"),
    ({"n_components": 2}, lambda o, p: o.n_channels == 2 and list(o.ids) == ["PC1", "PC2"]),
])
def test_each_default_can_be_overridden(kw, check):
    obs = read_lfp(_file(_recording(), 500.0), **kw)
    assert check(obs, obs.provenance["preprocess"])


def test_mains_inside_the_output_band_is_notched():
    x = _recording(line=50.0, fs=500.0)
    kw = dict(rate=250.0, band=(0.5, 80.0), zscore=False)
    on = read_lfp(_file(x, 500.0), **kw)
    off = read_lfp(_file(x, 500.0), notch=None, **kw)
    assert on.provenance["preprocess"]["notch"] == 50.0
    assert on.provenance["preprocess"]["notch_applied_hz"] == [50.0, 100.0]  # and a harmonic
    a_on = _amplitude(on.data[0][500:-500, 0], 250.0, 50.0)
    a_off = _amplitude(off.data[0][500:-500, 0], 250.0, 50.0)
    assert a_on < 0.02 * a_off
    # the 10-Hz rhythm is untouched by the notch
    assert _amplitude(on.data[0][500:-500, 0], 250.0, 10.0) == pytest.approx(
        _amplitude(off.data[0][500:-500, 0], 250.0, 10.0), rel=0.02)


def test_line_detection():
    rng = np.random.default_rng(1)
    t = np.arange(30000) / 1000.0
    noise = rng.normal(size=(t.size, 3)).cumsum(0) * 0.01 + rng.normal(size=(t.size, 3))
    assert detect_line_frequency(noise, 1000.0)[0] is None
    for f0 in (50.0, 60.0):
        x = noise + 2 * np.sin(2 * np.pi * f0 * t)[:, None]
        found, ratios = detect_line_frequency(x, 1000.0)
        assert found == f0 and ratios[str(f0)] > 5
    # too slow a series: nothing can be tested
    assert detect_line_frequency(noise[::10], 100.0) == (None, {})


def test_notch_frequencies_follow_aliasing():
    assert notch_frequencies(50.0, 2000.0, 200.0) == [50.0]     # 100 Hz = Nyquist: not notchable
    assert notch_frequencies(60.0, 1000.0, 110.0) == [50.0]    # 60 Hz would alias to 50 Hz
    assert notch_frequencies(60.0, 500.0, 75.0) == []          # in the stop band
    assert default_band_and_rate(30.0) == ((0.1, 12.0), 30.0)


def test_principal_components_for_wide_recordings():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(3000, 2)).cumsum(0)
    x = src @ rng.normal(size=(2, 24)) + 0.05 * rng.normal(size=(3000, 24))
    obs = read_lfp(_file(x, 200.0))
    pre = obs.provenance["preprocess"]
    assert pre["channels_in"] == 24 and pre["pca"]["n_components"] == obs.n_channels <= 4
    assert sum(pre["pca"]["explained_variance"]) >= 0.95
    assert list(obs.ids)[:2] == ["PC1", "PC2"] and obs.channel_info == {}
    comps = np.asarray(obs.provenance["pca_components"])
    assert comps.shape == (obs.n_channels, 24)
    np.testing.assert_allclose(comps @ comps.T, np.eye(obs.n_channels), atol=1e-9)
    # 16 channels or fewer are kept as they are
    out, info = principal_components([x[:, :16]], "auto")
    assert info is None and out[0].shape[1] == 16
    with pytest.raises(NWBReadError, match="n_components must be"):
        read_lfp(_file(x, 200.0), n_components=30)
    with pytest.raises(NWBReadError, match="notch must be"):
        read_lfp(_file(x, 200.0), notch=150.0)


# ------------------------------------------------------------------ shared real recordings
def _real(name):
    path = NWB_DIR / name
    if not path.is_file():
        pytest.skip(f"shared test file {path} not found (../shared/data/nwb is absent)")
    return path


def test_real_eeg_defaults():
    with pytest.warns(NWBReadWarning, match="set aside as artefacts"):
        obs = read_lfp(_real("eeg_openbci_8ch_blinks_jaw_alpha.nwb"))
    pre = obs.provenance["preprocess"]
    assert pre["notch"] == 60.0 and pre["line_ratios"]["60.0"] > 100   # US mains, detected
    assert pre["rate"] == 75.0 and obs.n_channels == 8 and pre["pca"] is None
    rej = pre["reject"]
    assert obs.n_bins == pytest.approx(rej["kept_s"] * 75, abs=2)
    assert rej["kept_s"] + rej["rejected_s"] == pytest.approx(89.96, abs=0.02)
    z = obs.concatenated()                        # float32: 16-bit samples
    np.testing.assert_allclose(z.std(0, dtype=np.float64), 1.0, atol=1e-6)
    # no 60-Hz residue aliased into the band (it would land at 15 Hz)
    from scipy.signal import welch
    f, P = welch(obs.data[-1], fs=75.0, nperseg=300, axis=0)
    P = P.mean(1)
    near = (np.abs(f - 15.0) > 0.5) & (np.abs(f - 15.0) < 3.0)
    assert P[np.abs(f - 15.0) < 0.3].max() < 3 * np.median(P[near])


def test_real_eeg_artefacts_set_aside():
    """The OpenBCI recording's blinks (its first seconds) and jaw clench (its last seconds) are
    set aside; what is kept is the alpha rhythm of channels 6-7, which dominates its spectrum,
    while the whole recording's spectrum is dominated by the artefacts' slow power."""
    from nwb_dsr.analysis.lyapunov import spectral_peak
    path = _real("eeg_openbci_8ch_blinks_jaw_alpha.nwb")
    with pytest.warns(NWBReadWarning, match=r"s of 90.0 s set aside as artefacts \(0.0–"):
        obs = read_lfp(path)
    rej = obs.provenance["preprocess"]["reject"]
    assert rej["tested"] and rej["factor"] == 4.0 and rej["windows"] == 89
    spans = rej["rejected"]
    assert spans[0][0] < 0.01 and spans[0][1] >= 8.0          # the blinks at the start
    assert spans[-1][0] <= 86.0 and spans[-1][1] > 89.9       # the jaw clench at the end
    assert 60.0 <= rej["kept_s"] <= 75.0 and obs.n_segments == len(obs.start_times) >= 2
    # segments lie between the spans, in recording time
    for t0, seg in zip(obs.start_times, obs.data):
        t1 = t0 + len(seg) / 75.0
        assert all(t1 <= a + 1e-6 or t0 >= b - 1e-6 for a, b in spans)
    assert obs.provenance["selection"]["reject"] == 4.0
    # the last fifth of the time kept holds alpha; the last fifth of the whole recording is
    # dominated by the clench
    rng = dict(fmin=0.2, fmax=24.0)
    last = obs.split_time(0.8, per_segment=False)[1]
    assert 9.0 <= spectral_peak(last.data, obs.bin_size, **rng)["frequency"] <= 13.0
    whole = read_lfp(path, reject=None)
    assert whole.n_segments == 1 and whole.provenance["preprocess"]["reject"] is None
    last = whole.split_time(0.8)[1]
    assert spectral_peak(last.data, whole.bin_size, **rng)["frequency"] < 6.0


def _with_artefacts(seconds=40.0, fs=250.0, seed=3):
    """µV: a 10-Hz rhythm in noise, a blink-like slow deflection on channel 0 at 10.2-10.6 s
    and a muscle burst (broadband) on channel 2 at 30.1-30.9 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    x = 20 * np.sin(2 * np.pi * 10 * t)[:, None] + 8 * rng.normal(size=(t.size, 3))
    blink = (t >= 10.2) & (t < 10.6)
    x[blink, 0] += 400 * np.sin(np.pi * (t[blink] - 10.2) / 0.4)
    burst = (t >= 30.1) & (t < 30.9)
    x[burst, 2] += 200 * rng.normal(size=burst.sum())
    return x


def test_artefacts_are_set_aside_recorded_and_overridable():
    nwb = _file(_with_artefacts(), 250.0)
    with pytest.warns(NWBReadWarning, match=r"2.0 s of 40.0 s set aside as artefacts "
                                            r"\(10.0–11.0 s, 30.0–31.0 s\)"):
        obs = read_lfp(nwb)
    rej = obs.provenance["preprocess"]["reject"]
    assert rej["artefact_windows"] == 2 and rej["windows"] == 40
    np.testing.assert_allclose(rej["rejected"], [[10.0, 11.0], [30.0, 31.0]], atol=0.01)
    assert [len(d) for d in obs.data] == [750, 1425, 675]     # 0-10 s, 11-30 s, 31-40 s at 75 Hz
    np.testing.assert_allclose(obs.start_times, [0.0, 11.0, 31.0], atol=0.01)
    np.testing.assert_allclose(obs.concatenated().std(0, dtype=np.float64), 1.0, atol=1e-6)
    assert "4 x the channel's median" in obs.provenance["preprocess"]["how"]["reject"]
    # a clean stretch shorter than 4 s between artefacts is set aside with them
    x = _with_artefacts()
    t = np.arange(len(x)) / 250.0
    x[(t >= 13.3) & (t < 13.5), 1] += 500.0
    obs = read_lfp(_file(x, 250.0))
    np.testing.assert_allclose(obs.provenance["preprocess"]["reject"]["rejected"],
                               [[10.0, 14.0], [30.0, 31.0]], atol=0.01)
    # overrides: off, a larger factor that tolerates these artefacts, raw reading
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", NWBReadWarning)
        kept = read_lfp(nwb, reject=None)
        assert kept.n_segments == 1 and kept.n_bins == 3000
        assert kept.provenance["preprocess"]["how"]["reject"] == "off (reject=None)"
        loose = read_lfp(nwb, reject=100.0)
        assert loose.n_segments == 1 and loose.provenance["preprocess"]["reject"]["tested"]
        raw = read_lfp(nwb, preprocess=False, rate=250.0)
        assert raw.n_segments == 1 and raw.provenance["preprocess"]["reject"] is None
    raw = read_lfp(nwb, preprocess=False, rate=250.0, reject=4.0, zscore=False)
    assert raw.n_segments == 3        # volts as stored, artefacts cut out on request
    # too short to judge: fewer than 20 windows
    with warnings.catch_warnings():
        warnings.simplefilter("error", NWBReadWarning)
        short = read_lfp(_file(_with_artefacts(seconds=12.0), 250.0))
    rec = short.provenance["preprocess"]["reject"]
    assert short.n_segments == 1 and not rec["tested"] and rec["windows"] == 12


def test_on_wide_recordings_an_artefact_spans_several_channels():
    """On 60 channels an event must reach 5 % of them (3) to set aside the time of all:
    a pop on one or two channels is those channels' problem."""
    from nwb_dsr.io.preprocess import reject_artefacts
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 60))                           # 30 s at 100 Hz
    x[1220:1260, :2] += 30.0                                  # two channels at 12 s
    x[2050:2080, 10:13] += 30.0                               # three channels at 20 s
    _, _, _, rec = reject_artefacts([x], [0.0], 100.0)
    assert rec["min_channels"] == 3 and rec["rejected"] == [[20.0, 21.0]]
    _, _, _, rec = reject_artefacts([x], [0.0], 100.0, min_channels=1)
    assert rec["rejected"] == [[12.0, 13.0], [20.0, 21.0]]
    _, _, _, rec = reject_artefacts([x[:, 1:21]], [0.0], 100.0)  # up to 20 channels: any one
    assert rec["min_channels"] == 1 and rec["rejected"] == [[12.0, 13.0], [20.0, 21.0]]


def test_trials_with_artefacts_are_dropped_whole():
    nwb = _file(_with_artefacts(), 250.0)
    for k in range(20):
        nwb.add_trial(start_time=2.0 * k, stop_time=2.0 * k + 1.5)
    with pytest.warns(NWBReadWarning, match="2 trials set aside as artefacts"):
        obs = read_lfp(nwb, trials=True)
    rej = obs.provenance["preprocess"]["reject"]
    assert rej["trials_dropped"] == [5, 15] and rej["windows"] == 20
    assert obs.n_segments == 18
    # the selection records the trials read (a re-read with it drops the same two)
    assert obs.provenance["selection"]["trials"] == list(range(20))
    assert {len(d) for d in obs.data} == {113}       # 1.5 s of 250-Hz samples at 75 Hz


@pytest.mark.parametrize("bad", [0.5, 1.0, "x", True])
def test_reject_must_be_a_factor_above_one(bad):
    with pytest.raises(NWBReadError, match="reject must be 'auto', None or a factor above 1"):
        read_lfp(_file(_with_artefacts(seconds=4.0), 250.0), reject=bad)


def test_everything_an_artefact_is_one_clear_error():
    from nwb_dsr.io.preprocess import reject_artefacts
    x = np.ones((2000, 2)) * np.array([1.0, -1.0])
    x += np.random.default_rng(0).normal(scale=0.01, size=x.shape)
    for k in range(20):                    # a burst on channel k % 2 in every 1-s window
        x[k * 100 + 40:k * 100 + 60, k % 2] += 5.0
    with pytest.raises(ValueError, match="every window holds an artefact"):
        reject_artefacts([x], [0.0], 100.0, 1.5)
    nwb = _file(x * 100, 100.0)
    with pytest.raises(NWBReadError, match="nothing is left to fit; pass reject=None"):
        read_lfp(nwb, reject=1.5, rate=100.0, band=None)


def test_real_wide_lfp_defaults():
    obs = read_lfp(_real("nwbguide_sub-001_ses-1.nwb"))
    pre = obs.provenance["preprocess"]
    assert pre["channels_in"] == 384 and 1 <= obs.n_channels <= 16
    assert pre["pca"]["n_components"] == obs.n_channels and pre["notch"] is None
    assert obs.bin_size == pytest.approx(1 / 75.0)


def test_ground_truth_lfp_mixture_defaults(tmp_path):
    from nwb_dsr.datasets import write_lorenz_nwb
    path = write_lorenz_nwb(tmp_path / "l.nwb", n_units=3, duration=30.0, n_lfp_channels=6,
                            seed=1)
    obs = read_lfp(path)
    pre = obs.provenance["preprocess"]
    assert obs.n_channels == 6 and pre["notch"] is None and pre["band"] == [0.1, 30.0]
    raw = read_lfp(path, rate=75.0, preprocess=False)
    # the slow Lorenz signal passes the band: the preprocessed channels follow the raw ones
    r = np.corrcoef(obs.data[0][100:-100, 0], raw.data[0][100:-100, 0])[0, 1]
    assert r > 0.9


def test_dsr_defaults_for_field_potentials():
    """DSR() on read_lfp's output: learned forcing states, twice the data's dimension as latent
    size, τ with its record; on raw volts the generic continuous defaults."""
    import warnings

    from nwb_dsr import DSR
    from nwb_dsr.policies import data_dimension
    kw = dict(epochs=1, batches_per_epoch=1, batch_size=4, hidden_dim=4, progress=False)
    obs = read_lfp(_file(_recording(n_ch=6, seconds=20.0), 500.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # Rosenstein on a short noisy series
        est = DSR(**kw).fit(obs)
    assert est.resolved_config_.forcing.mode == "shooting"
    assert est.latent_model_.name == "shallow_plrnn"
    d = data_dimension(obs)
    assert d < 6 and est.latent_model_.latent_dim == 2 * d   # two latent units per dimension
    from nwb_dsr.config import DSRConfig
    from nwb_dsr.policies import default_hidden_dim, resolve
    # the hidden width follows the latent size as for any data
    hidden = resolve(DSRConfig.from_params(tau=10), obs).model.hidden_dim
    assert hidden == default_hidden_dim(2 * d)
    assert est.tau_info_["method"] in ("rosenstein", "timescale_bound", "fallback")
    assert est.tau_info_["lower_bound"] is not None and est.tau_info_["timescale"] is not None
    assert est.provenance_["preprocess"]["enabled"] is True
    raw = read_lfp(_file(_recording(n_ch=6, seconds=4.0), 500.0), preprocess=False)
    est = DSR(tau=10, **kw).fit(raw)
    assert est.resolved_config_.forcing.mode == "sparse" and est.latent_model_.latent_dim == 12
    assert resolve(DSRConfig.from_params(tau=10), raw).model.hidden_dim == 256
    assert est.latent_model_.name == "shallow_plrnn"


def test_a_fits_recorded_selection_sets_aside_the_same_artefacts(tmp_path):
    """What a written fit re-reads (nwb_dsr.io.sources.read_provenance, used by ``nwb-dsr
    evaluate``) is what it was fitted to: the same spans cut out, the same trials dropped."""
    from pynwb import NWBHDF5IO

    from nwb_dsr.io.sources import read_provenance
    nwb = _file(_with_artefacts(), 250.0)
    for k in range(20):
        nwb.add_trial(start_time=2.0 * k, stop_time=2.0 * k + 1.5)
    path = tmp_path / "eeg.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    with pytest.warns(NWBReadWarning):
        for kw in ({}, {"trials": True}):
            obs = read_lfp(path, **kw)
            again = read_provenance(obs.provenance, "continuous", obs.bin_size)
            assert again.n_segments == obs.n_segments in (3, 18)
            np.testing.assert_allclose(again.start_times, obs.start_times)
            np.testing.assert_allclose(again.concatenated(), obs.concatenated(), atol=1e-6)
