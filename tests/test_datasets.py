"""Tests of nwb_dsr.datasets: integrators, Lyapunov exponent, the Lorenz population, NWB files."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from nwb_dsr.datasets import (
    LORENZ63_LYAPUNOV_MAX,
    SYSTEMS,
    ODESystem,
    Population,
    get_system,
    integrate,
    load_ground_truth,
    lorenz63,
    lorenz_lyapunov_max,
    lorenz_lyapunov_spectrum,
    lyapunov_max,
    lyapunov_spectrum,
    make_lorenz_counts,
    make_lorenz_population,
    make_population,
    roessler,
    write_lorenz_nwb,
    write_population_nwb,
)

pynwb = pytest.importorskip("pynwb")

SMALL = dict(n_units=8, duration=40.0, bin_size=0.01, n_lfp_channels=4, lfp_rate=100.0)


def _bin(spike_times, n_bins, bin_size):
    edges = np.arange(n_bins + 1) * bin_size
    return np.stack([np.histogram(t, edges)[0] for t in spike_times], axis=1)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lorenz") / "small.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the writer must not trigger pynwb/hdmf warnings
        write_lorenz_nwb(path, n_trials=3, seed=3, **{k: v for k, v in SMALL.items()})
    return path


# --- integrators -----------------------------------------------------------------------------

def test_lorenz63_stays_on_the_attractor():
    x = lorenz63(20000, dt=0.01, seed=1)
    assert x.shape == (20000, 3)
    assert np.all(np.abs(x[:, 0]) < 25) and np.all(np.abs(x[:, 1]) < 30)
    assert np.all((x[:, 2] > 0) & (x[:, 2] < 55))
    # known statistics of the classic attractor: mean z about 23.5, both wings visited
    assert 22.0 < x[:, 2].mean() < 25.0
    assert (x[:, 0] > 0).mean() == pytest.approx(0.5, abs=0.15)


def test_lorenz63_seeds_and_initial_condition():
    a, b, c = lorenz63(300, seed=5), lorenz63(300, seed=5), lorenz63(300, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    x0 = [1.0, 2.0, 20.0]
    np.testing.assert_array_equal(lorenz63(50, x0=x0, seed=1), lorenz63(50, x0=x0, seed=2))
    np.testing.assert_allclose(lorenz63(1, x0=x0, transient=0.0)[0], x0)


def test_lorenz63_matches_a_reference_integration():
    """LSODA (the fast default) against DOP853 at tight tolerance, over a short horizon."""
    x0 = [1.0, 1.0, 20.0]
    fast = lorenz63(301, dt=0.01, x0=x0, transient=0.0)
    ref = solve_ivp(lambda t, s: [10 * (s[1] - s[0]), s[0] * (28 - s[2]) - s[1],
                                  s[0] * s[1] - 8 / 3 * s[2]], (0, 3.0), x0, method="DOP853",
                    t_eval=np.arange(301) * 0.01, rtol=1e-12, atol=1e-12).y.T
    np.testing.assert_allclose(fast, ref, atol=2e-6)
    via_solve_ivp = lorenz63(301, dt=0.01, x0=x0, transient=0.0, method="DOP853")
    np.testing.assert_allclose(via_solve_ivp, ref, atol=1e-6)


def test_roessler_bounds():
    x = roessler(4000, seed=0)
    assert x.shape == (4000, 3)
    assert np.all(np.abs(x[:, :2]) < 15) and np.all((x[:, 2] >= 0) & (x[:, 2] < 30))


def test_lorenz_lyapunov_max_is_close_to_the_reference():
    lam = lorenz_lyapunov_max(t_max=25.0, n_trajectories=64, seed=1)
    assert lam == pytest.approx(0.906, rel=0.05)


def test_lorenz_lyapunov_spectrum_sums_to_the_divergence():
    lam = lorenz_lyapunov_spectrum(t_max=10.0, n_trajectories=16)
    assert lam.shape == (3,) and lam[0] > lam[1] > lam[2]
    assert lam.sum() == pytest.approx(-(10 + 1 + 8 / 3), abs=1e-3)
    assert abs(lam[1]) < 0.05


# --- the registry of systems -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_every_system_integrates_onto_a_bounded_chaotic_attractor(name):
    system = get_system(name)
    assert isinstance(system, ODESystem) and system.name == name and system.dim == 3
    x = integrate(name, 3000, dt=0.2 / system.time_scale, seed=0)
    assert x.shape == (3000, 3) and np.all(np.isfinite(x))
    assert np.all(np.abs(x) < 100) and np.all(x.std(axis=0) > 0.1)
    # the default time scale puts the predictability time between 0.5 and 1.5 s
    assert system.lyapunov_reference is not None
    assert 0.5 < np.log(2) / (system.lyapunov_reference * system.time_scale) < 1.5
    # analytic Jacobian against central differences at a point of the trajectory
    f, jac = system.functions()
    s0, h = x[1234], 1e-6
    numeric = np.stack([(np.asarray(f(s0 + h * e)) - np.asarray(f(s0 - h * e))) / (2 * h)
                        for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(np.asarray(jac(s0), dtype=float), numeric, atol=1e-6)


def test_generic_integrator_is_the_old_one():
    np.testing.assert_array_equal(lorenz63(200, seed=3), integrate("lorenz63", 200, 0.01,
                                                                   seed=3))
    np.testing.assert_array_equal(roessler(200, seed=3), integrate("Roessler", 200, 0.05,
                                                                   seed=3))
    assert get_system(SYSTEMS["chen"]) is SYSTEMS["chen"]


def test_lyapunov_max_lorenz_and_roessler():
    assert lyapunov_max("lorenz63") == pytest.approx(0.906, rel=0.02)
    assert lyapunov_max("roessler") == pytest.approx(0.0714, rel=0.04)


@pytest.mark.parametrize("name, divergence", [
    ("thomas", -3 * 0.18),        # -3 b
    ("halvorsen", -3 * 1.27),     # -3 a
    ("chen", -35.0 - 3.0 + 28.0),  # -a - b + c
    ("sprott_b", -1.0),
])
def test_lyapunov_spectrum_against_the_literature(name, divergence):
    lam = lyapunov_spectrum(name)
    reference = get_system(name).lyapunov_reference
    assert lam[0] == pytest.approx(reference, rel=0.04)
    assert abs(lam[1]) < 0.1 * lam[0]             # the flow direction
    assert lam.sum() == pytest.approx(divergence, rel=1e-3, abs=1e-3)   # constant divergence


def test_lyapunov_is_cached_and_stable_across_seeds():
    import time
    first = lyapunov_spectrum("sprott_b", seed=1)
    t0 = time.perf_counter()
    again = lyapunov_spectrum("sprott_b", seed=1)
    assert time.perf_counter() - t0 < 0.05
    np.testing.assert_array_equal(first, again)
    again[0] = 0.0   # a copy: the cache is not changed through it
    assert lyapunov_spectrum("sprott_b", seed=1)[0] == first[0]
    longer = lyapunov_max("sprott_b", t_max=600.0, n_trajectories=32, seed=2)
    assert longer == pytest.approx(first[0], rel=0.03)


# --- population ------------------------------------------------------------------------------

def test_population_shapes_rates_and_counts():
    pop = make_lorenz_population(n_units=20, duration=100.0, n_lfp_channels=3, seed=2)
    n_bins = 10000
    assert pop.latent.shape == (n_bins, 3) and pop.counts.shape == (n_bins, 20)
    assert pop.rates.shape == (n_bins, 20) and pop.C.shape == (20, 3) and pop.d.shape == (20,)
    np.testing.assert_allclose(pop.latent.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(pop.latent.std(axis=0), 1, atol=1e-10)
    np.testing.assert_allclose(pop.times, 0.005 + 0.01 * np.arange(n_bins))
    np.testing.assert_allclose(pop.rates, np.exp(pop.latent @ pop.C.T + pop.d) / 0.01)
    # Poisson counts with the stated means
    expected = pop.rates.sum(axis=0) * 0.01
    z = (pop.counts.sum(axis=0) - expected) / np.sqrt(expected)
    assert np.all(np.abs(z) < 5)
    # sensible defaults: 0.1-0.3 spikes per bin on average, a few to a few tens of Hz
    assert 0.1 < pop.counts.mean() < 0.3
    assert np.all((pop.rates.mean(axis=0) > 1) & (pop.rates.mean(axis=0) < 80))
    # spike times bin back to the counts exactly, sorted, on the stated clock
    np.testing.assert_array_equal(_bin(pop.spike_times, n_bins, 0.01), pop.counts)
    assert all(np.all(np.diff(t) >= 0) for t in pop.spike_times)
    ticks = np.concatenate(pop.spike_times) / pop.spike_time_resolution - 0.5
    np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-6)
    assert pop.lfp.shape == (25000, 3) and pop.lfp_rate == 250.0
    np.testing.assert_allclose(pop.lfp / pop.lfp_conversion, np.round(pop.lfp / pop.lfp_conversion))


def test_population_lyapunov_and_time_scale():
    pop = make_lorenz_population(n_units=3, duration=10.0, time_scale=2.0, n_lfp_channels=0,
                                 seed=4)
    assert pop.lyapunov_max == pytest.approx(2 * LORENZ63_LYAPUNOV_MAX)
    assert pop.predictability_time == pytest.approx(np.log(2) / (2 * 0.9056))
    # time_scale is Lorenz time units per second: doubling it at a fixed bin size equals
    # doubling the bin at time_scale 1
    slow = make_lorenz_population(n_units=3, duration=20.0, bin_size=0.02, n_lfp_channels=0,
                                  seed=4)
    np.testing.assert_allclose(pop.latent, slow.latent, atol=1e-6)
    assert pop.parameters["lyapunov_max_per_s"] == pop.lyapunov_max


def test_population_other_parameters_use_the_numerical_exponent():
    pop = make_lorenz_population(n_units=2, duration=5.0, rho=35.0, time_scale=2.0,
                                 n_lfp_channels=0, seed=0)
    assert pop.parameters["lyapunov_max_per_time_unit"] != LORENZ63_LYAPUNOV_MAX
    assert 0.95 < pop.parameters["lyapunov_max_per_time_unit"] < 1.1   # about 1.0 at rho = 35
    assert pop.lyapunov_max == 2 * pop.parameters["lyapunov_max_per_time_unit"]


def test_seeds():
    a = make_lorenz_population(n_units=4, duration=20.0, n_lfp_channels=2, seed=7)
    b = make_lorenz_population(n_units=4, duration=20.0, n_lfp_channels=2, seed=7)
    c = make_lorenz_population(n_units=4, duration=20.0, n_lfp_channels=2, seed=8)
    for x, y in zip(a.spike_times, b.spike_times):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.lfp, b.lfp)
    assert not all(len(x) == len(y) and np.array_equal(x, y)
                   for x, y in zip(a.spike_times, c.spike_times))
    drawn = make_lorenz_population(n_units=2, duration=1.0, seed=None)
    assert isinstance(drawn.parameters["seed"], int)


def test_counts_helper_matches_the_population():
    counts, latent, truth = make_lorenz_counts(n_units=5, duration=20.0, seed=9)
    pop = make_lorenz_population(n_units=5, duration=20.0, seed=9)   # with spikes and LFP
    np.testing.assert_array_equal(counts, pop.counts)
    np.testing.assert_array_equal(latent, pop.latent)
    np.testing.assert_array_equal(truth["C"], pop.C)
    assert truth["lyapunov_max"] == pop.lyapunov_max and truth["bin_size"] == 0.01


def test_make_population_is_make_lorenz_population():
    a = make_population(n_units=6, duration=20.0, n_lfp_channels=2, seed=11)
    b = make_lorenz_population(n_units=6, duration=20.0, n_lfp_channels=2, seed=11)
    for key in ("latent", "counts", "lfp", "C", "d"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.parameters == b.parameters and a.system == "lorenz63" and a.n_trials is None
    assert a.lambda_max == pytest.approx(LORENZ63_LYAPUNOV_MAX)
    [segment] = a.segments()
    np.testing.assert_array_equal(segment, a.counts)
    obs = a.observations()
    assert obs.n_segments == 1 and obs.kind == "counts" and obs.bin_size == 0.01


@pytest.mark.parametrize("name", ["roessler", "thomas", "chen"])
def test_population_of_other_systems(name):
    system = get_system(name)
    pop = make_population(name, n_units=30, mean_rate=20.0, bin_size=0.02, duration=200.0,
                          seed=1)
    assert pop.system == name and pop.counts.shape == (10000, 30)
    np.testing.assert_allclose(pop.latent.std(axis=0), 1, atol=1e-10)
    assert pop.lambda_max == pytest.approx(system.lyapunov_reference * system.time_scale)
    assert pop.parameters["lyapunov_max_source"] == "reference"
    # the mean rate is the one asked for (up to the Poisson noise and the log-normal spread)
    assert pop.counts.mean() / 0.02 == pytest.approx(20.0, rel=0.25)
    np.testing.assert_allclose(pop.rates, np.exp(pop.latent @ pop.C.T + pop.d) / 0.02)
    np.testing.assert_array_equal(_bin(pop.spike_times, 10000, 0.02), pop.counts)


def test_population_with_other_parameters_uses_the_numerical_exponent():
    pop = make_population("halvorsen", n_units=2, duration=5.0, params=dict(a=1.3),
                          time_scale=2.0, seed=0)
    assert pop.parameters["a"] == 1.3 and pop.parameters["lyapunov_max_source"] == "numerical"
    assert pop.lambda_max == pytest.approx(2 * lyapunov_max("halvorsen", dict(a=1.3)))
    assert 0.6 < pop.parameters["lyapunov_max_per_time_unit"] < 0.9


def test_population_in_trials():
    pop = make_population("roessler", n_units=12, n_trials=150, trial_duration=1.5,
                          inter_trial_interval=(0.5, 1.0), seed=4)
    n_bins = 150 * 150
    assert pop.n_trials == 150 and pop.counts.shape == (n_bins, 12)
    assert pop.latent.shape == (n_bins, 3) and pop.times.shape == (n_bins,)
    np.testing.assert_allclose(pop.latent.mean(axis=0), 0, atol=1e-10)
    # trials on one session clock, in whole bins, separated by the inter-trial intervals
    start, stop = pop.trials.T
    np.testing.assert_allclose(stop - start, 1.5)
    gaps = start[1:] - stop[:-1]
    assert start[0] == 0 and np.all((gaps > 0.5 - 1e-9) & (gaps < 1.0 + 1e-9))
    np.testing.assert_allclose(start / 0.01, np.round(start / 0.01), atol=1e-9)
    assert pop.duration == stop[-1]
    # per-trial views
    counts, latents, times = pop.segments(), pop.segments("latent"), pop.segments("times")
    assert len(counts) == 150 and all(c.shape == (150, 12) for c in counts)
    for k in (0, 77, 149):
        np.testing.assert_allclose(times[k], start[k] + 0.005 + 0.01 * np.arange(150))
        edges = start[k] + 0.01 * np.arange(151)
        binned = np.stack([np.histogram(t, edges)[0] for t in pop.spike_times], axis=1)
        np.testing.assert_array_equal(binned, counts[k])
    # no spike outside the trials
    everything = np.concatenate(pop.spike_times)
    inside = (np.searchsorted(stop, everything, "right")
              == np.searchsorted(start, everything, "right") - 1)
    assert np.all(inside) and everything.size == pop.counts.sum()
    obs = pop.observations()
    assert obs.n_segments == 150 and obs.n_channels == 12
    np.testing.assert_array_equal(obs.data[3], counts[3])
    np.testing.assert_allclose(obs.start_times, start)
    # within a trial the latent is a smooth piece of the attractor; across trials it restarts
    # at an independent point: the end of a trial does not predict the start of the next
    within = np.mean([np.abs(np.diff(x, axis=0)).mean() for x in latents])
    ends = np.array([x[-1] for x in latents[:-1]])
    starts = np.array([x[0] for x in latents[1:]])
    across = np.abs(starts - ends).mean()
    assert across > 10 * within
    for i in range(3):
        assert abs(np.corrcoef(ends[:, i], starts[:, i])[0, 1]) < 0.3
    assert np.all(starts.std(axis=0) > 0.6)   # spread over the attractor
    assert pop.lambda_max == pytest.approx(0.714) and pop.parameters["n_trials"] == 150


def test_population_in_trials_seeds():
    a = make_population("chen", n_units=3, n_trials=5, trial_duration=1.0, seed=3)
    b = make_population("chen", n_units=3, n_trials=5, trial_duration=1.0, seed=3)
    c = make_population("chen", n_units=3, n_trials=5, trial_duration=1.0, seed=4)
    np.testing.assert_array_equal(a.latent, b.latent)
    np.testing.assert_array_equal(a.trials, b.trials)
    assert not np.array_equal(a.trials, c.trials) and not np.allclose(a.latent, c.latent)


# --- NWB -------------------------------------------------------------------------------------

def test_file_contents(small_file):
    pop = make_lorenz_population(seed=3, **SMALL)
    with pynwb.NWBHDF5IO(str(small_file), mode="r") as io:
        nwb = io.read()
        units = nwb.units
        assert len(units) == 8
        assert set(units["quality"][:]) <= {"good", "mua"}
        trains = [units.get_unit_spike_times(i) for i in range(len(units))]
        assert units.resolution == pytest.approx(1 / 32768)
        trials = nwb.trials
        start, stop = trials["start_time"][:], trials["stop_time"][:]
        correct = trials["correct"][:]
        series = nwb.processing["ecephys"]["LFP"]["ElectricalSeries"]
        lfp_shape, lfp_rate = series.data.shape, series.rate
        lfp_volts = series.data[:] * series.conversion
        assert series.electrodes.table is nwb.electrodes
        assert nwb.subject.species == "Mus musculus" and nwb.session_start_time.tzinfo
        latent_series = nwb.processing["ground_truth"]["true_latent"]
        assert latent_series.unit == "a.u." and latent_series.rate == pytest.approx(100.0)
        assert "Lorenz" in latent_series.description
    for x, y in zip(trains, pop.spike_times):
        np.testing.assert_array_equal(x, y)
    # spike counts agree with the stored truth exp(C x + d)
    truth = load_ground_truth(small_file)
    counts = _bin(trains, truth["latent"].shape[0], truth["bin_size"])
    expected = np.exp(truth["latent"] @ truth["C"].T + truth["d"]).sum(axis=0)
    assert np.all(np.abs(counts.sum(axis=0) - expected) < 5 * np.sqrt(expected))
    # trials tile the session with 0.1 s gaps
    assert start[0] == 0 and stop[-1] == pytest.approx(40.0)
    np.testing.assert_allclose(start[1:] - stop[:-1], 0.1)
    assert np.all(stop > start) and correct.dtype == bool
    assert lfp_shape == (4000, 4) and lfp_rate == 100.0
    np.testing.assert_array_equal(lfp_volts, pop.lfp)


def test_ground_truth_round_trips_exactly(small_file):
    pop = make_lorenz_population(seed=3, **SMALL)
    truth = load_ground_truth(small_file)
    for key in ("latent", "times", "C", "d"):
        np.testing.assert_array_equal(truth[key], getattr(pop, key))
    np.testing.assert_array_equal(truth["lfp_mixing"], pop.lfp_mixing)
    assert truth["lyapunov_max"] == pop.lyapunov_max
    assert truth["parameters"] == pop.parameters
    np.testing.assert_array_equal(truth["unit_ids"], np.arange(8))


def test_nwbinspector_is_clean(small_file):
    inspector = pytest.importorskip("nwbinspector")
    bad = [m for m in inspector.inspect_nwbfile(nwbfile_path=str(small_file))
           if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR",
                                    "PYNWB_VALIDATION")]
    assert not bad, [m.message for m in bad]


def test_same_seed_same_file_spikes_and_no_lfp(tmp_path):
    paths = [write_lorenz_nwb(tmp_path / f"{name}.nwb", n_units=3, duration=10.0, lfp=False,
                              seed=seed) for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    trains = []
    for path in paths:
        with pynwb.NWBHDF5IO(str(path), mode="r") as io:
            nwb = io.read()
            assert "ecephys" not in nwb.processing
            trains.append([nwb.units.get_unit_spike_times(i) for i in range(3)])
    for x, y in zip(trains[0], trains[1]):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(trains[0], trains[2]))


def test_overwrite(tmp_path):
    path = write_lorenz_nwb(tmp_path / "x.nwb", n_units=2, duration=2.0, lfp=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_lorenz_nwb(path, n_units=2, duration=2.0, lfp=False)
    write_lorenz_nwb(path, n_units=3, duration=2.0, lfp=False, overwrite=True)
    assert load_ground_truth(path)["C"].shape == (3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nwb"]


def test_default_file_is_small(tmp_path):
    path = write_lorenz_nwb(tmp_path / "demo.nwb")
    assert path.stat().st_size < 8e6
    truth = load_ground_truth(path)
    assert truth["latent"].shape == (60000, 3) and truth["C"].shape == (60, 3)
    assert truth["predictability_time"] / truth["bin_size"] == pytest.approx(76.5, abs=0.5)


def test_trials_file_round_trips(tmp_path):
    from nwb_dsr import read_units
    kwargs = dict(n_units=6, n_trials=8, trial_duration=1.0, mean_rate=25.0, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_population_nwb(tmp_path / "thomas.nwb", "thomas", **kwargs)
    pop = make_population("thomas", **kwargs)
    obs = read_units(path, 0.01, trials=True)
    assert obs.n_segments == 8 and obs.kind == "counts"
    for got, want in zip(obs.data, pop.segments()):
        np.testing.assert_array_equal(got, want)
    truth = load_ground_truth(path)
    assert truth["system"] == "thomas" and truth["lyapunov_max"] == pop.lambda_max
    assert truth["predictability_time"] == pytest.approx(pop.predictability_time)
    np.testing.assert_array_equal(truth["trials"], pop.trials)
    for key in ("latent", "times", "C", "d"):
        np.testing.assert_array_equal(truth[key], getattr(pop, key))
    assert truth["parameters"] == pop.parameters
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        nwb = io.read()
        assert "Thomas" in nwb.session_description and nwb.trials["correct"][:].dtype == bool
        np.testing.assert_allclose(nwb.units.get_unit_obs_intervals(0), pop.trials)
    inspector = pytest.importorskip("nwbinspector")
    bad = [m for m in inspector.inspect_nwbfile(nwbfile_path=str(path))
           if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR",
                                    "PYNWB_VALIDATION")]
    assert not bad, [m.message for m in bad]


def test_write_a_given_population(tmp_path):
    pop = make_population("sprott_b", n_units=3, duration=4.0, n_lfp_channels=2, seed=5)
    path = write_population_nwb(tmp_path / "b.nwb", population=pop, n_trials=2)
    truth = load_ground_truth(path)
    np.testing.assert_array_equal(truth["latent"], pop.latent)
    np.testing.assert_array_equal(truth["lfp_mixing"], pop.lfp_mixing)
    assert truth["system"] == "sprott_b" and truth["trials"].shape == (2, 2)
    with pytest.raises(TypeError, match="population must be a Population"):
        write_population_nwb(tmp_path / "c.nwb", population=pop.counts)
    trials = make_population(n_units=2, n_trials=2, trial_duration=1.0)
    with pytest.raises(ValueError, match="already has trials"):
        write_population_nwb(tmp_path / "c.nwb", population=trials, n_trials=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.nwb"]


def test_load_ground_truth_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No NWB file"):
        load_ground_truth(tmp_path / "missing.nwb")
    from datetime import datetime, timezone
    nwb = pynwb.NWBFile(session_description="plain", identifier="plain",
                        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    with pynwb.NWBHDF5IO(str(tmp_path / "plain.nwb"), mode="w") as io:
        io.write(nwb)
    with pytest.raises(KeyError, match="ground_truth"):
        load_ground_truth(tmp_path / "plain.nwb")


@pytest.mark.parametrize("call, error, match", [
    (lambda: lorenz63(0), ValueError, "n_steps must be an integer >= 1"),
    (lambda: lorenz63(10, dt=-1.0), ValueError, "dt must be a positive"),
    (lambda: lorenz63(10, x0=[1.0, 2.0]), ValueError, "x0 must be 3 finite numbers"),
    (lambda: lorenz63(10, transient=-1.0), ValueError, "transient must be >= 0"),
    (lambda: roessler(10, dt=0.0), ValueError, "dt must be a positive"),
    (lambda: lorenz_lyapunov_max(n_trajectories=0), ValueError, "n_trajectories must be"),
    (lambda: make_lorenz_population(n_units=0), ValueError, "n_units must be an integer"),
    (lambda: make_lorenz_population(bin_size=0.0), ValueError, "bin_size must be a positive"),
    (lambda: make_lorenz_population(duration=0.01), ValueError, "at least two bins"),
    (lambda: make_lorenz_population(mean_rate=-1.0), ValueError, "mean_rate must be"),
    (lambda: make_lorenz_population(modulation=-1.0), ValueError, "modulation must be"),
    (lambda: make_lorenz_population(seed=-3), ValueError, "seed must be a non-negative"),
    (lambda: make_lorenz_population(duration=1.0, spike_sampling_rate=100.0), ValueError,
     "at least two clock samples"),
    (lambda: make_lorenz_population(duration=1.0, lfp_amplitude=1.0), ValueError,
     "does not fit int16"),
    (lambda: make_lorenz_population(duration=1.0, rho=10.0), ValueError, "fixed point"),
    (lambda: get_system("lorenz96"), ValueError, "Unknown system 'lorenz96'; choose one of"),
    (lambda: integrate("chen", 10, 0.01, params={"rho": 1.0}), ValueError,
     r"\['rho'\] are not parameters of chen"),
    (lambda: integrate("thomas", 10, 0.1, x0=[0.0, 1.0]), ValueError, "x0 must be 3 finite"),
    (lambda: lyapunov_spectrum("roessler", t_max=-1.0), ValueError, "t_max must be a positive"),
    (lambda: make_population("roessler", n_trials=3), ValueError, "go together"),
    (lambda: make_population(trial_duration=1.0), ValueError, "go together"),
    (lambda: make_population(n_trials=0, trial_duration=1.0), ValueError,
     "n_trials must be an integer >= 1"),
    (lambda: make_population(n_trials=2, trial_duration=0.01), ValueError,
     "trial_duration .* at least two bins"),
    (lambda: make_population(n_trials=2, trial_duration=1.0, inter_trial_interval=(2.0, 1.0)),
     ValueError, "inter_trial_interval must be a pair"),
    (lambda: make_population(n_trials=2, trial_duration=1.0, trial_separation=3.0), ValueError,
     "trial_separation must be a pair"),
    (lambda: make_population(n_trials=2, trial_duration=1.0, n_lfp_channels=2), ValueError,
     "only simulated for continuous recordings"),
    (lambda: make_population("sprott_b", time_scale=0.0), ValueError,
     "time_scale must be a positive"),
    (lambda: make_population("chen", n_units=2, duration=1.0, params=dict(c=10.0)), ValueError,
     "chen latent is constant"),
    (lambda: Population.segments(make_population(n_units=2, duration=1.0), "spikes"), ValueError,
     "what must be 'counts'"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="n_trials must be an integer"):
        write_lorenz_nwb(tmp_path / "t.nwb", n_units=2, duration=2.0, n_trials=0)
    with pytest.raises(ValueError, match="trial_gap must be"):
        write_lorenz_nwb(tmp_path / "t.nwb", n_units=2, duration=2.0, n_trials=2, trial_gap=-1)
    with pytest.raises(ValueError, match="less than half"):
        write_lorenz_nwb(tmp_path / "t.nwb", n_units=2, duration=2.0, n_trials=20)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_lorenz_nwb(tmp_path / "no" / "t.nwb", n_units=2, duration=2.0)
    assert list(tmp_path.iterdir()) == []
