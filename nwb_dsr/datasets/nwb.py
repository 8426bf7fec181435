"""Ground-truth recordings written as real NWB files, and their ground truth read back."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .populations import SPIKE_MODEL, Population, make_lorenz_population, make_population
from .systems import ODESystem, _check_count

__all__ = ["write_population_nwb", "write_lorenz_nwb", "load_ground_truth"]

_DISPLAY_NAMES = {"lorenz63": "Lorenz-63", "roessler": "Rössler", "thomas": "Thomas",
                  "halvorsen": "Halvorsen", "chen": "Chen", "sprott_b": "Sprott B"}

_LOCATION = "Isocortex"   # nominal Allen CCF term (nwbinspector asks for one for mouse data)

_PARAMETER_DESCRIPTIONS = {
    "system": "name of the latent dynamical system",
    "sigma": "Lorenz-63 parameter sigma",
    "rho": "Lorenz-63 parameter rho",
    "beta": "Lorenz-63 parameter beta",
    "time_scale": "system time units per second of recording",
    "lyapunov_max_per_s": "largest Lyapunov exponent of the latent, in 1/s",
    "lyapunov_max_per_time_unit": "largest Lyapunov exponent per system time unit",
    "bin_size": "bin width in seconds; the latent is sampled at the bin centres",
    "seed": "random seed of the simulation (nwb_dsr.datasets.make_population)",
    "n_units": "number of simulated units",
    "duration": "recording length in seconds",
    "mean_rate": "target population mean firing rate in Hz",
    "modulation": "scale of the loadings of the log rate on the latent",
    "rate_spread": "log-standard deviation of the per-unit mean rates",
    "spike_model": "how spikes were generated from the rates",
    "n_lfp_channels": "number of LFP channels (0: none)",
    "lfp_rate": "LFP sampling rate in Hz (0: no LFP)",
    "lfp_noise": "standard deviation of the LFP white noise in volts",
    "lyapunov_max_source": "'reference' (literature value) or 'numerical' (QR method)",
    "n_trials": "number of trials (each starting at an independent point of the attractor)",
    "trial_duration": "length of each trial in seconds",
    "inter_trial_interval_min": "shortest gap between trials on the session clock, in s",
    "inter_trial_interval_max": "longest gap between trials on the session clock, in s",
    "trial_separation_min": "shortest latent run between trials, in Lyapunov times",
    "trial_separation_max": "longest latent run between trials, in Lyapunov times",
}


def _describe(key: str) -> str:
    return _PARAMETER_DESCRIPTIONS.get(key, f"parameter {key} of the latent system")


def write_population_nwb(path, system: str | ODESystem = "lorenz63", *,
                         population: Population | None = None, n_trials: int | None = None,
                         trial_duration: float | None = None, seed: int | None = 0,
                         overwrite: bool = False, trial_gap: float = 0.1,
                         n_electrodes: int | None = None, **kwargs) -> Path:
    """Simulate a recording driven by any registered system (or take one) and write it as NWB.

    The file holds subject and session metadata, one device and electrode group, an electrodes
    table, the Units table (spike times, the electrode of each unit, ``obs_intervals`` (the
    session or its trials), a ``quality`` column with about 10 % ``"mua"``, and the ground
    truth ``true_loading`` (dim per unit), ``true_offset`` and ``true_mean_rate``), a trials
    table when there are trials, the LFP when there is one (processing module ``ecephys``,
    int16 with ``conversion``, gzip), and a processing module ``ground_truth`` with the
    TimeSeries ``true_latent`` (the z-scored latent on the bin centres) and the one-row
    DynamicTable ``true_parameters`` (system, its parameters, lambda_max, ...). Read the truth
    back with :func:`load_ground_truth`, the spikes per trial with
    ``nwb_dsr.read_units(path, bin_size, trials=True)``.

    Parameters
    ----------
    path : str or path-like
        File to write (``.nwb``). Its folder must exist.
    system : str or ODESystem, default "lorenz63"
        The latent system (ignored when ``population`` is given).
    population : Population, optional
        A population to write instead of simulating one.
    n_trials : int, optional
        With ``trial_duration``: a recording made of ``n_trials`` trials, each starting at an
        independent point of the attractor (see :func:`make_population`). Alone: the
        continuous recording is cut into ``n_trials`` equal trials tiling the session, each
        followed by a gap of ``trial_gap`` seconds (none after the last).
    trial_duration : float, optional
        Trial length in seconds of a recording made of trials.
    seed : int or None, default 0
        Random seed (None draws one; it is recorded in ``true_parameters``).
    overwrite : bool, default False
        Replace ``path`` if it exists; otherwise an existing file is an error.
    trial_gap : float, default 0.1
        Inter-trial gap in seconds when tiling a continuous recording.
    n_electrodes : int, optional
        Rows of the electrodes table (default: the LFP channels, at least one).
    **kwargs
        Other arguments of :func:`make_population` (``n_units``, ``duration``, ``bin_size``,
        ``mean_rate``, ``time_scale``, ``params``, ``n_lfp_channels``, ...).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nwb_dsr import read_units
    >>> from nwb_dsr.datasets import write_population_nwb, load_ground_truth
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_population_nwb(pathlib.Path(tmp) / "chen.nwb", "chen", n_units=4,
    ...                                 n_trials=3, trial_duration=1.0)
    ...     truth = load_ground_truth(path)
    ...     obs = read_units(path, 0.01, trials=True)
    >>> truth["system"], truth["trials"].shape, obs.n_segments, obs.data[0].shape
    ('chen', (3, 2), 3, (100, 4))
    """
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import DynamicTable, DynamicTableRegion, VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ecephys import LFP, ElectricalSeries
    from pynwb.file import Subject
    from pynwb.misc import Units

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or "
                              "choose another path.")
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; give a file name such as "
                                f"{path / 'lorenz.nwb'}.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder {path.parent} does not exist; create it first.")
    if population is None:
        pop = make_population(system, n_trials=n_trials, trial_duration=trial_duration,
                              seed=seed, **kwargs)
        tile = None
    else:
        if not isinstance(population, Population):
            raise TypeError(f"population must be a Population (from make_population); got "
                            f"{type(population).__name__}.")
        pop = population
        if trial_duration is not None:
            raise ValueError("trial_duration is for simulating a recording made of trials; "
                             "with population=..., pass n_trials alone to tile it.")
        tile = n_trials
    if tile is not None:
        tile = _check_count(tile, "n_trials")
        if pop.n_trials is not None:
            raise ValueError("This population already has trials; write it without n_trials.")
    if not np.isfinite(trial_gap) or trial_gap < 0:
        raise ValueError(f"trial_gap must be a finite number >= 0 (seconds); got {trial_gap!r}.")
    n_lfp = 0 if pop.lfp is None else pop.lfp.shape[1]
    n_electrodes = max(1, n_lfp if n_electrodes is None
                       else _check_count(n_electrodes, "n_electrodes", minimum=n_lfp))
    par = pop.parameters
    label = _DISPLAY_NAMES.get(pop.system, pop.system)
    dim = pop.dim
    if tile is not None and trial_gap * (tile - 1) >= 0.5 * pop.duration:
        raise ValueError(f"n_trials={n_trials} with trial_gap={trial_gap} s leaves less than "
                         f"half of the {pop.duration} s session in trials; lower either.")
    n_trials = tile
    gz = dict(compression="gzip", compression_opts=4, shuffle=True)

    nwbfile = NWBFile(
        session_description=(
            f"Synthetic recording generated by nwb_dsr.datasets: a {label} "
            f"latent (time scale {par['time_scale']} system time units per second, largest "
            f"Lyapunov exponent {pop.lyapunov_max:.4f} 1/s) drives {pop.n_units} Poisson units "
            "(log-linear rates)"
            + (" and an LFP-like noisy linear mixture" if pop.lfp is not None else "")
            + (f", in {pop.n_trials} trials each starting at an independent point of the "
               "attractor" if pop.n_trials is not None else "")
            + ". Ground truth is stored in the processing module 'ground_truth' and in the "
            "Units columns 'true_*'."),
        identifier=str(uuid.uuid4()),
        session_start_time=datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc),
        experimenter=["Simulation, Nwb-Dsr"],
        institution="nwb_dsr (synthetic data)",
        lab="nwb_dsr",
        keywords=["synthetic", label, "dynamical systems reconstruction"],
        experiment_description=f"Simulated with seed {par['seed']}; {SPIKE_MODEL}.",
        subject=Subject(subject_id=f"{'lorenz' if pop.system == 'lorenz63' else pop.system}-"
                        f"{par['seed']}", species="Mus musculus", sex="U",
                        age="P90D", description="Synthetic subject: no animal was recorded; the "
                        f"data are simulated from a {label} latent."),
    )
    device = nwbfile.create_device(name="simulated_probe",
                                   description="Simulated silicon probe (synthetic data).")
    group = nwbfile.create_electrode_group(name="shank0", description="Simulated shank (the "
                                           "location is nominal: the data are synthetic).",
                                           location=_LOCATION, device=device)
    nwbfile.add_electrode_column(name="true_lfp_loading",
                                 description="Ground truth: weights (volts per latent standard "
                                 "deviation) of the z-scored latent in this channel's LFP; zeros "
                                 "when no LFP was written.")
    mixing = pop.lfp_mixing if pop.lfp_mixing is not None else np.zeros((n_electrodes, dim))
    for e in range(n_electrodes):
        nwbfile.add_electrode(group=group, location=_LOCATION,
                              true_lfp_loading=mixing[e])

    # the Units table is built column-wise from arrays: adding rows one by one turns the
    # spike times into a Python list that hdmf then converts element by element (slow)
    rng_quality = np.random.default_rng(np.random.SeedSequence(par["seed"], spawn_key=(4,)))
    quality = np.where(rng_quality.random(pop.n_units) < 0.1, "mua", "good")
    n = pop.n_units
    units = Units(name="units", description="Simulated units: Poisson spike trains driven by "
                  f"the ground-truth {label} latent (columns true_*).",
                  resolution=pop.spike_time_resolution, electrode_table=nwbfile.electrodes,
                  id=np.arange(n))
    ends = np.cumsum([len(t) for t in pop.spike_times])
    one_each = np.arange(1, n + 1)
    spikes = VectorData(name="spike_times", description="Spike times in seconds.",
                        data=H5DataIO(np.concatenate(pop.spike_times).astype(np.float64), **gz))
    electrodes = DynamicTableRegion(name="electrodes", description="The electrode each unit "
                                    "was recorded on.", data=np.arange(n) % n_electrodes,
                                    table=nwbfile.electrodes)
    observed = pop.trials if pop.trials is not None else np.array([[0.0, pop.duration]])
    intervals = VectorData(name="obs_intervals", description="Observation intervals (the whole "
                           "session, or its trials).", data=np.tile(observed, (n, 1)))
    columns = [
        spikes, VectorIndex(name="spike_times_index", data=ends, target=spikes),
        electrodes, VectorIndex(name="electrodes_index", data=one_each, target=electrodes),
        VectorData(name="electrode_group", description="The electrode group of each unit.",
                   data=[group] * n),
        intervals, VectorIndex(name="obs_intervals_index", data=one_each * len(observed),
                               target=intervals),
        VectorData(name="quality", description="Sorting quality: 'good' (single unit) or 'mua' "
                   "(multi-unit activity); simulated labels.", data=quality.tolist()),
        VectorData(name="true_loading", description=f"Ground truth: loading C_i ({dim} values) of "
                   "the unit's log expected count per bin on the z-scored latent; "
                   "E[count in bin k] = exp(C_i . x_k + d_i).", data=pop.C),
        VectorData(name="true_offset", description="Ground truth: offset d_i of the unit's log "
                   "expected count per bin.", data=pop.d),
        VectorData(name="true_mean_rate", description="Ground truth: the unit's mean firing "
                   "rate over the session, in Hz.", data=pop.rates.mean(axis=0)),
    ]
    units = Units(name="units", description="Simulated units: Poisson spike trains driven by "
                  f"the ground-truth {label} latent (columns true_*).", id=np.arange(n),
                  columns=columns, resolution=pop.spike_time_resolution,
                  electrode_table=nwbfile.electrodes)
    nwbfile.units = units

    if pop.trials is not None:
        rng_trials = np.random.default_rng(np.random.SeedSequence(par["seed"], spawn_key=(5,)))
        nwbfile.add_trial_column(name="correct", description="Whether the (simulated) trial "
                                 "was correct; random, unrelated to the dynamics.")
        for start, stop in pop.trials:
            nwbfile.add_trial(start_time=float(start), stop_time=float(stop),
                              correct=bool(rng_trials.random() < 0.8))
    elif n_trials is not None:
        rng_trials = np.random.default_rng(np.random.SeedSequence(par["seed"], spawn_key=(5,)))
        length = (pop.duration - trial_gap * (n_trials - 1)) / n_trials
        nwbfile.add_trial_column(name="correct", description="Whether the (simulated) trial "
                                 "was correct; random, unrelated to the dynamics.")
        for k in range(n_trials):
            start = k * (length + trial_gap)
            stop = pop.duration if k == n_trials - 1 else start + length
            nwbfile.add_trial(start_time=start, stop_time=stop,
                              correct=bool(rng_trials.random() < 0.8))

    if pop.lfp is not None:
        region = nwbfile.create_electrode_table_region(
            region=list(range(n_electrodes)), description="all simulated LFP channels")
        data = np.round(pop.lfp / pop.lfp_conversion).astype(np.int16)
        # LFP in its module first, so the series' electrode region shares an ancestor with the
        # electrodes table when it is attached (else hdmf warns)
        ecephys = nwbfile.create_processing_module(
            name="ecephys", description="Processed extracellular electrophysiology (LFP).")
        lfp_container = LFP()
        ecephys.add(lfp_container)
        series = ElectricalSeries(
            name="ElectricalSeries", description="LFP-like signal: noisy linear mixture of the "
            f"z-scored {label} latent (weights in the electrodes column true_lfp_loading) plus "
            "white noise, quantised to int16; multiply by conversion for volts.",
            data=H5DataIO(data, chunks=(min(len(data), 25000), n_electrodes), **gz),
            electrodes=region, rate=float(pop.lfp_rate), starting_time=0.0,
            conversion=float(pop.lfp_conversion), filtering="none (synthetic broadband signal)")
        lfp_container.add_electrical_series(series)

    truth = nwbfile.create_processing_module(
        name="ground_truth", description="Ground truth of the synthetic recording: the latent "
        "dynamical system that generated the spikes and the LFP, and its parameters.")
    clock = (dict(rate=1.0 / pop.bin_size, starting_time=pop.bin_size / 2)
             if pop.trials is None else dict(timestamps=H5DataIO(pop.times, **gz)))
    truth.add(TimeSeries(
        name="true_latent",
        data=H5DataIO(pop.latent, chunks=(min(pop.n_bins, 20000), dim), **gz),
        unit="a.u.", **clock,
        description=(f"Ground-truth latent: the {label} state ({dim} dimensions), z-scored per "
                     "dimension, sampled at the bin centres (bin_size / 2 + k * bin_size"
                     + (", within the trials only" if pop.trials is not None else "")
                     + "); expected spike count of unit i in bin k = exp(true_loading_i . "
                     "latent_k + true_offset_i)."),
        comments=(f"z-scoring mean {pop.latent_mean.tolist()}, sd {pop.latent_std.tolist()} "
                  "(system units).")))
    table = DynamicTable(name="true_parameters", description="Parameters of the simulation "
                         "(one row): the latent system, its time scale and largest Lyapunov "
                         "exponent, the binning and the random seed.")
    for key, value in par.items():
        table.add_column(name=key, description=_describe(key))
    table.add_row(**{k: (int(v) if isinstance(v, (int, np.integer)) else v)
                     for k, v in par.items()})
    truth.add(table)

    tmp = path.with_name(f".{path.stem}.partial.nwb")
    try:
        with NWBHDF5IO(str(tmp), mode="w") as io:
            io.write(nwbfile)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path




def write_lorenz_nwb(path, n_units: int = 60, duration: float = 600.0, bin_size: float = 0.01,
                     n_trials: int | None = None, lfp: bool = True, seed: int | None = 0,
                     overwrite: bool = False, trial_gap: float = 0.1,
                     **kwargs) -> Path:
    """Simulate a Lorenz-driven recording and write it as a valid NWB file.

    :func:`write_population_nwb` of a :func:`make_lorenz_population` recording (continuous,
    optionally tiled into trials), with 16 LFP channels by default.

    The file holds subject and session metadata, one device and electrode group, an electrodes
    table (``n_lfp_channels`` electrodes, 16 by default), the Units table (spike times, the
    electrode of each unit, a ``quality`` column with about 10 % ``"mua"``, and the ground
    truth ``true_loading`` (3 per unit), ``true_offset`` and ``true_mean_rate``), optionally a
    trials table and the LFP (processing module ``ecephys``, int16 with ``conversion``, gzip),
    and a processing module ``ground_truth`` with the TimeSeries ``true_latent`` (the z-scored
    Lorenz latent on the bin centres) and the one-row DynamicTable ``true_parameters``. The
    electrodes table also has ``true_lfp_loading`` (the LFP mixing weights in volts).
    Read the truth back with :func:`load_ground_truth`.

    Parameters
    ----------
    path : str or path-like
        File to write (``.nwb``). Its folder must exist.
    n_units : int, default 60
        Number of units.
    duration : float, default 600.0
        Recording length in seconds.
    bin_size : float, default 0.01
        Bin width in seconds of the ground-truth latent and rates.
    n_trials : int, optional
        If given, a trials table of ``n_trials`` equal trials tiling the session, each followed
        by a gap of ``trial_gap`` seconds (none after the last), with a boolean ``correct``
        column (about 80 % True).
    lfp : bool, default True
        Whether to write the LFP-like signal.
    seed : int or None, default 0
        Random seed (None draws one; it is recorded in ``true_parameters``).
    overwrite : bool, default False
        Replace ``path`` if it exists; otherwise an existing file is an error.
    trial_gap : float, default 0.1
        Inter-trial gap in seconds (when ``n_trials`` is given).
    **kwargs
        Other arguments of :func:`make_lorenz_population` (``time_scale``, ``mean_rate``,
        ``modulation``, ``n_lfp_channels``, ``lfp_rate``, ...).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nwb_dsr.datasets import write_lorenz_nwb, load_ground_truth
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_lorenz_nwb(pathlib.Path(tmp) / "lorenz.nwb", n_units=4, duration=5.0,
    ...                             n_trials=2, n_lfp_channels=2)
    ...     truth = load_ground_truth(path)
    >>> truth["latent"].shape, truth["C"].shape, round(truth["lyapunov_max"], 4)
    ((500, 3), (4, 3), 0.9056)
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or "
                              "choose another path.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder {path.parent} does not exist; create it first.")
    if n_trials is not None:
        n_trials = _check_count(n_trials, "n_trials")
    if not np.isfinite(trial_gap) or trial_gap < 0:
        raise ValueError(f"trial_gap must be a finite number >= 0 (seconds); got {trial_gap!r}.")
    n_lfp_channels = kwargs.pop("n_lfp_channels", 16)
    n_electrodes = max(1, _check_count(n_lfp_channels, "n_lfp_channels", minimum=0))
    pop = make_lorenz_population(n_units=n_units, duration=duration, bin_size=bin_size,
                                 n_lfp_channels=n_lfp_channels if lfp else 0, seed=seed,
                                 **kwargs)
    return write_population_nwb(path, population=pop, n_trials=n_trials, overwrite=overwrite,
                                trial_gap=trial_gap, n_electrodes=n_electrodes)




def load_ground_truth(path) -> dict:
    """Read the ground truth back from a file written by :func:`write_population_nwb`.

    Parameters
    ----------
    path : str or path-like
        The NWB file.

    Returns
    -------
    dict
        ``latent`` (n_bins, dim) the z-scored latent; ``times`` (n_bins,) bin centres in s
        on the session clock; ``C`` (n_units, dim) and ``d`` (n_units,) in Units-table order;
        ``unit_ids`` (n_units,); ``system`` (its name); ``lyapunov_max`` (1/s);
        ``predictability_time`` (s); ``bin_size`` (s); ``lfp_mixing`` (n_electrodes, dim) in
        volts; ``trials`` ((n_trials, 2) start and stop times in s, or None without a trials
        table); ``parameters`` (dict, the row of ``true_parameters``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    KeyError
        If the file has no ``ground_truth`` processing module (it was not written by
        :func:`write_population_nwb`).

    Examples
    --------
    See :func:`write_population_nwb`.
    """
    from pynwb import NWBHDF5IO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No NWB file at {path}.")
    with NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        if "ground_truth" not in nwbfile.processing:
            raise KeyError(f"{path} has no 'ground_truth' processing module; load_ground_truth "
                           "reads files written by nwb_dsr.datasets.write_lorenz_nwb.")
        module = nwbfile.processing["ground_truth"]
        table = module["true_parameters"]
        parameters: dict[str, Any] = {}
        for name in table.colnames:
            value = table[name][0]
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.generic):
                value = value.item()
            parameters[name] = value
        series = module["true_latent"]
        latent = np.asarray(series.data[:], dtype=float)
        bin_size = float(parameters["bin_size"])
        if series.timestamps is not None:
            times = np.asarray(series.timestamps[:], dtype=float)
        else:
            times = float(series.starting_time) + np.arange(latent.shape[0]) * bin_size
        trials = None
        if nwbfile.trials is not None:
            trials = np.stack([np.asarray(nwbfile.trials["start_time"][:], dtype=float),
                               np.asarray(nwbfile.trials["stop_time"][:], dtype=float)], axis=1)
        units = nwbfile.units
        C = np.asarray(units["true_loading"][:], dtype=float)
        d = np.asarray(units["true_offset"][:], dtype=float)
        unit_ids = np.asarray(units.id[:])
        lfp_mixing = np.asarray(nwbfile.electrodes["true_lfp_loading"][:], dtype=float)
    lam = float(parameters["lyapunov_max_per_s"])
    return dict(latent=latent, times=times, C=C, d=d, unit_ids=unit_ids,
                system=str(parameters.get("system", "lorenz63")), lyapunov_max=lam, trials=trials,
                predictability_time=float(np.log(2.0) / lam) if lam > 0 else float("inf"),
                bin_size=bin_size, lfp_mixing=lfp_mixing, parameters=parameters)

