"""The :class:`Observations` container: binned neural data, whatever its source.

Every reader in :mod:`nwb_dsr.io` returns one, and every model, trainer and metric takes one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["Observations", "KINDS", "as_observations", "looks_like_counts"]

KINDS = ("counts", "continuous")


def _as_segment(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array; got an object array. "
                        "Pass a (n_bins, n_channels) float or integer array.")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n_bins, n_channels); got an array with "
                         f"{arr.ndim} dimensions {arr.shape}. Put time along axis 0.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); it needs at least one bin and "
                         "one channel.")
    return arr


def _first_not_finite(arr: np.ndarray, block: int = 1 << 20):
    """(row, column) of the first NaN or inf of ``arr``, or None; checked in row blocks of
    about ``block`` values, so no mask of the whole array is made."""
    rows = max(1, block // max(1, arr.shape[1]))
    for a in range(0, arr.shape[0], rows):
        ok = np.isfinite(arr[a:a + rows])
        if not ok.all():
            r, c = np.argwhere(~ok)[0]
            return a + int(r), int(c)
    return None


def looks_like_counts(segments) -> bool:
    """Whether every array in ``segments`` holds non-negative whole numbers (spike counts).

    >>> import numpy as np
    >>> looks_like_counts([np.array([[0, 2], [1, 0]])]), looks_like_counts([np.array([0.5])])
    (True, False)
    """
    arrs = [np.asarray(s) for s in segments]
    is_int = all(a.dtype.kind in "iub" or (a.dtype.kind == "f" and np.all(np.isfinite(a))
                                             and np.all(a == np.round(a))) for a in arrs)
    return bool(is_int and all(np.all(a >= 0) for a in arrs))


@dataclass
class Observations:
    """Binned observations of a recording: one array per trial or segment.

    Parameters
    ----------
    data : list of ndarray
        One array of shape (n_bins_k, n_channels) per segment; every segment has the same
        channels. A single 2-D array is accepted as one segment. Stored as float: counts as
        float32 (float64 from 2**24 on), continuous float32 arrays as given, other continuous
        data as float64.
    kind : {"counts", "continuous"}
        ``"counts"`` for spike counts per bin (non-negative integers, modelled as Poisson),
        ``"continuous"`` for LFP, rates or any real-valued signal (modelled as Gaussian).
    bin_size : float
        Width of one bin in seconds.
    start_times : sequence of float, optional
        Time in seconds of the first bin's left edge for each segment (default 0, then
        consecutive).
    ids : sequence, optional
        Unit or channel identifiers, one per column (default ``0..n_channels-1``).
    provenance : dict, optional
        Where the data came from: file, object path, selection (unit ids, channels, trials,
        interval). Written next to a fit in NWB.
    channel_info : dict, optional
        Per-channel metadata (for example the Units table's ``location`` column), each value a
        sequence of length n_channels.

    Raises
    ------
    ValueError
        If the segments are not 2-D, differ in channel count, contain NaN or inf, if ``kind`` is
        unknown, if ``bin_size`` is not positive, or counts are negative.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import Observations
    >>> obs = Observations([np.zeros((100, 3)), np.ones((50, 3))], kind="continuous", bin_size=0.01)
    >>> obs.n_segments, obs.n_channels, obs.n_bins
    (2, 3, 150)
    """

    data: list
    kind: str = "continuous"
    bin_size: float = 1.0
    start_times: Sequence[float] | None = None
    ids: Sequence | None = None
    provenance: dict = field(default_factory=dict)
    channel_info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.data, np.ndarray) and self.data.ndim <= 2:
            self.data = [self.data]
        if not isinstance(self.data, (list, tuple)) or len(self.data) == 0:
            raise ValueError("data must be a (n_bins, n_channels) array or a non-empty list of "
                             "such arrays, one per segment or trial.")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}. Use 'counts' for "
                             "spike counts and 'continuous' for LFP or other real-valued signals.")
        try:
            bs = float(self.bin_size)
        except (TypeError, ValueError):
            raise TypeError(f"bin_size must be a number of seconds; got {self.bin_size!r}.") from None
        if not np.isfinite(bs) or bs <= 0:
            raise ValueError(f"bin_size must be a positive number of seconds; got {self.bin_size!r}.")
        self.bin_size = bs
        segs = []
        for k, x in enumerate(self.data):
            arr = _as_segment(x, f"segment {k}")
            bad = None if arr.dtype.kind in "iub" else _first_not_finite(arr)
            if bad is not None:
                raise ValueError(f"segment {k} contains NaN or inf (first at bin {bad[0]}, channel "
                                 f"{bad[1]}); remove or interpolate those samples, or split the "
                                 "recording into segments around them.")
            if self.kind == "counts":
                if arr.dtype.kind != "u" and arr.min() < 0:
                    raise ValueError(f"segment {k} has negative values, but kind='counts' expects "
                                     "spike counts >= 0; use kind='continuous' for signed signals.")
                exact32 = arr.dtype.kind == "b" or arr.max() < 2**24  # float32 holds these exactly
                arr = arr.astype(np.float32 if exact32 else np.float64, copy=False)
            elif arr.dtype != np.float32:   # float32 kept (as readers of 16-bit data give it)
                arr = arr.astype(np.float64, copy=False)
            segs.append(arr)
        n = {s.shape[1] for s in segs}
        if len(n) != 1:
            raise ValueError(f"all segments must have the same number of channels; got {sorted(n)}.")
        self.data = segs
        if self.start_times is None:
            starts, t = [], 0.0
            for s in segs:
                starts.append(t)
                t += s.shape[0] * bs
            self.start_times = np.asarray(starts)
        else:
            st = np.asarray(self.start_times, dtype=float).ravel()
            if st.size != len(segs):
                raise ValueError(f"start_times has {st.size} entries but there are {len(segs)} "
                                 "segments; give one start time per segment.")
            self.start_times = st
        if self.ids is None:
            self.ids = np.arange(self.n_channels)
        else:
            ids = np.asarray(self.ids)
            if ids.shape != (self.n_channels,):
                raise ValueError(f"ids must have one entry per channel ({self.n_channels}); got "
                                 f"shape {ids.shape}.")
            self.ids = ids
        self.provenance = dict(self.provenance or {})
        self.channel_info = dict(self.channel_info or {})

    # ------------------------------------------------------------------ properties
    @property
    def n_segments(self) -> int:
        """Number of segments (trials)."""
        return len(self.data)

    @property
    def n_channels(self) -> int:
        """Number of channels (units or electrodes)."""
        return self.data[0].shape[1]

    @property
    def n_bins(self) -> int:
        """Total number of bins over all segments."""
        return int(sum(s.shape[0] for s in self.data))

    @property
    def lengths(self) -> list[int]:
        """Number of bins in each segment."""
        return [int(s.shape[0]) for s in self.data]

    @property
    def sampling_rate(self) -> float:
        """Bins per second (``1 / bin_size``)."""
        return 1.0 / self.bin_size

    def times(self, segment: int = 0) -> np.ndarray:
        """Centre times in seconds of the bins of one segment, shape (n_bins_k,)."""
        n = self.data[segment].shape[0]
        return self.start_times[segment] + (np.arange(n) + 0.5) * self.bin_size

    def concatenated(self) -> np.ndarray:
        """All segments stacked along time, shape (n_bins, n_channels)."""
        return np.concatenate(self.data, axis=0)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_array(cls, x, bin_size: float = 1.0, kind: str | None = None, **kwargs) -> "Observations":
        """Build observations from one (n_bins, n_channels) array or a list of them.

        ``kind`` defaults to ``"counts"`` for non-negative integer data and ``"continuous"``
        otherwise.

        Examples
        --------
        >>> import numpy as np
        >>> from nwb_dsr import Observations
        >>> Observations.from_array(np.random.default_rng(0).poisson(1.0, (20, 4))).kind
        'counts'
        """
        segs = x if isinstance(x, (list, tuple)) else [x]
        if kind is None:
            kind = "counts" if looks_like_counts(segs) else "continuous"
        return cls(list(segs), kind=kind, bin_size=bin_size, **kwargs)

    # ------------------------------------------------------------------ transforms
    def select_channels(self, index) -> "Observations":
        """A copy holding only the given channel columns (indices or boolean mask)."""
        idx = np.arange(self.n_channels)[index]
        info = {k: np.asarray(v)[idx] for k, v in self.channel_info.items()}
        return Observations([s[:, idx] for s in self.data], kind=self.kind, bin_size=self.bin_size,
                            start_times=self.start_times, ids=np.asarray(self.ids)[idx],
                            provenance=dict(self.provenance), channel_info=info)

    def split_time(self, fraction: float, per_segment: bool = True
                   ) -> tuple["Observations", "Observations"]:
        """Split the data in time into (first, second) parts.

        Parameters
        ----------
        fraction : float
            Share of the bins in the first part, strictly between 0 and 1.
        per_segment : bool, default True
            Split every segment at ``fraction`` of its length (trials: the end of each trial is
            held out). False: split the segments, taken in order as one recording, at
            ``fraction`` of all bins: the segments before the cut form the first part, those
            after it the second, and the one the cut falls in is split (a recording whose
            artefacts were set aside: its last stretch of time is held out).

        Examples
        --------
        >>> import numpy as np
        >>> from nwb_dsr import Observations
        >>> a, b = Observations(np.zeros((100, 2)), bin_size=0.1).split_time(0.8)
        >>> a.n_bins, b.n_bins, float(b.start_times[0])
        (80, 20, 8.0)
        >>> obs = Observations([np.zeros((60, 2)), np.zeros((40, 2))], bin_size=0.1,
        ...                    start_times=[0.0, 10.0])
        >>> a, b = obs.split_time(0.5, per_segment=False)
        >>> [len(s) for s in a.data], [len(s) for s in b.data], b.start_times.tolist()
        ([50], [10, 40], [5.0, 10.0])
        """
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie strictly between 0 and 1; got {fraction}.")
        first, second, s1, s2 = [], [], [], []
        if per_segment:
            for s, t0 in zip(self.data, self.start_times):
                cut = int(round(s.shape[0] * fraction))
                if cut < 1 or cut >= s.shape[0]:
                    raise ValueError(f"a segment of {s.shape[0]} bins is too short to split at "
                                     f"fraction {fraction}.")
                first.append(s[:cut]); second.append(s[cut:])
                s1.append(t0); s2.append(t0 + cut * self.bin_size)
        else:
            cut = int(round(self.n_bins * fraction))
            if cut < 1 or cut >= self.n_bins:
                raise ValueError(f"{self.n_bins} bins are too few to split at fraction "
                                 f"{fraction}.")
            done = 0
            for s, t0 in zip(self.data, self.start_times):
                c = min(max(cut - done, 0), s.shape[0])
                if c > 0:
                    first.append(s[:c]); s1.append(t0)
                if c < s.shape[0]:
                    second.append(s[c:]); s2.append(t0 + c * self.bin_size)
                done += s.shape[0]
        kw = dict(kind=self.kind, bin_size=self.bin_size, ids=self.ids,
                  provenance=dict(self.provenance), channel_info=dict(self.channel_info))
        return Observations(first, start_times=s1, **kw), Observations(second, start_times=s2, **kw)

    def __repr__(self) -> str:
        src = self.provenance.get("source", "array")
        return (f"Observations(kind={self.kind!r}, n_segments={self.n_segments}, "
                f"n_bins={self.n_bins}, n_channels={self.n_channels}, bin_size={self.bin_size:g} s, "
                f"source={src!r})")


def as_observations(X, bin_size: float | None = None, kind: str | None = None,
                    n_channels: int | None = None) -> Observations:
    """Observations from Observations, one (n_bins, n_channels) array or a list of them.

    Parameters
    ----------
    X : Observations, ndarray or list of ndarray
    bin_size : float, optional
        Bin width in seconds of arrays (default 1: one time unit per bin). Ignored for
        Observations.
    kind : {"counts", "continuous"}, optional
        Kind of arrays (default: counts for non-negative integers).
    n_channels : int, optional
        Required number of channels (e.g. the number a model was fitted on).

    Raises
    ------
    TypeError
        If X is neither Observations nor arrays.
    ValueError
        If X has another number of channels than ``n_channels``.

    Examples
    --------
    >>> import numpy as np
    >>> as_observations(np.zeros((10, 2)), bin_size=0.1).bin_size
    0.1
    >>> as_observations(np.zeros((10, 2)), n_channels=3)
    Traceback (most recent call last):
    ...
    ValueError: X has 2 channels but the model was fitted on 3.
    """
    if isinstance(X, Observations):
        obs = X
    elif isinstance(X, (np.ndarray, list, tuple)):
        obs = Observations.from_array(list(X) if isinstance(X, (list, tuple)) else X,
                                      bin_size=1.0 if bin_size is None else bin_size, kind=kind)
    else:
        raise TypeError(f"X must be an Observations object or a (n_bins, n_channels) array (or a "
                        f"list of them); got {type(X).__name__}. NWB files are read with "
                        "nwb_dsr.read_units or nwb_dsr.read_lfp.")
    if n_channels is not None and obs.n_channels != int(n_channels):
        raise ValueError(f"X has {obs.n_channels} channels but the model was fitted on "
                         f"{int(n_channels)}.")
    return obs
