"""One configuration: every setting of a fit, its default, its meaning and its check.

:class:`DSRConfig` is the only source of defaults. It groups the settings in sections —
:class:`ModelConfig`, :class:`ObservationConfig`, :class:`ForcingConfig`,
:class:`OptimizationConfig`, :class:`EvaluationConfig` and :class:`RunConfig` — and is derived
into the keyword arguments of :class:`nwb_dsr.DSR` (one flat name per setting), the options of
``nwb-dsr fit`` and the ``config`` stored with every fit in NWB.

Some settings are rules rather than numbers (``tau="auto"``, ``latent_dim=None``,
``mode="auto"``, ``smoothing`` in seconds). :func:`nwb_dsr.policies.resolve` turns them into
numbers once, against the data, and returns a :class:`ResolvedConfig` that the trainer, the
evaluation and the writer read; a fitted estimator keeps it as ``resolved_config_``.

Examples
--------
>>> from nwb_dsr.config import DSRConfig
>>> cfg = DSRConfig.from_params(tau=30, lr=1e-3)
>>> cfg.forcing.tau, cfg.optimization.lr, cfg.model.model
(30, 0.001, 'auto')
>>> DSRConfig().params()["tau"]
'auto'
>>> DSRConfig.from_params(tau=0)
Traceback (most recent call last):
...
ValueError: tau must be 'auto' or an integer number of bins >= 1; got 0.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["ModelConfig", "ObservationConfig", "ForcingConfig", "OptimizationConfig",
           "EvaluationConfig", "RunConfig", "DSRConfig", "ResolvedConfig", "SECTIONS",
           "LATENT_MODEL_NAMES", "DEFAULT_SPIKE_BIN_SIZE", "LYAPUNOV_STEPS", "LYAPUNOV_STARTS"]

#: Names of the latent maps (see :mod:`nwb_dsr.models.latent`).
LATENT_MODEL_NAMES = ("shallow_plrnn", "clipped_shallow_plrnn", "plrnn", "dendritic_plrnn",
                      "lstm", "rnn")

#: Bin width in seconds for spike counts read from NWB when none is given (10 ms).
DEFAULT_SPIKE_BIN_SIZE = 0.01

#: Steps over which the Lyapunov exponents of a fitted map are averaged by default (after the
#: transient): :func:`nwb_dsr.analysis.lyapunov_spectrum`, :func:`nwb_dsr.evaluate`, the
#: ensemble members' λ_max and ``nwb-dsr fit --lyapunov-steps``. A finite run's exponent
#: varies with its start: on two fits to the Lorenz-driven spike benchmark (10-ms bins) λ_max
#: of five runs from perturbed starts spread by a standard deviation of 0.03–0.05 /s over
#: 20,000 steps (4–7 %), 0.023 over 100,000 and 0.014 over 200,000; 100,000 steps take about
#: 1 s at latent size 3 and 5 s at 16.
LYAPUNOV_STEPS = 100_000

#: States of the training data that a fit keeps (``DSR.start_states_``: forced states of bins
#: spread evenly over it) and from which its Lyapunov spectrum is estimated by default, the
#: :data:`LYAPUNOV_STEPS` shared among them; the median run's spectrum is reported. A fitted map
#: can have several attractors, and the one its mean state falls into need not be the one the
#: data occupy: on fits to Rössler-driven spike counts the mean state ran onto a cycle
#: (λ_max −0.07 and 0.00 /s) while runs from the data's states stayed on a chaotic attractor
#: (0.45–0.59 /s against the true 0.71).
LYAPUNOV_STARTS = 5


def _setting(default, help: str, *, cli: bool = False, metavar: str | None = None,
             choices: tuple | None = None):
    """A dataclass field carrying its help text and whether ``nwb-dsr fit`` exposes it."""
    return field(default=default, metadata={"help": help, "cli": cli, "metavar": metavar,
                                            "choices": choices})


# ------------------------------------------------------------------------------- checks
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) \
        and not isinstance(v, (bool, np.bool_)) and math.isfinite(float(v))


def _int_at_least(name, v, low, *, allow_none=False, extra=""):
    if v is None and allow_none:
        return
    if not _is_int(v) or v < low:
        raise ValueError(f"{name} must be {extra}an integer >= {low}; got {v!r}.")


def _number(name, v, *, low=None, high=None, low_open=False, high_open=False, allow_none=False,
            what="a number"):
    if v is None and allow_none:
        return
    bad = not _is_num(v)
    if not bad and low is not None:
        bad = v <= low if low_open else v < low
    if not bad and high is not None:
        bad = v >= high if high_open else v > high
    if bad:
        raise ValueError(f"{name} must be {what}; got {v!r}.")


def _choice(name, v, options):
    if v not in options:
        raise ValueError(f"{name} must be one of {list(options)}; got {v!r}.")


# ------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ModelConfig:
    """The latent map."""

    model: str = _setting(
        "auto", "latent map; auto: the shallow PLRNN", cli=True,
        choices=("auto", *LATENT_MODEL_NAMES))
    latent_dim: int | None = _setting(
        None, "latent size M; none: 3 for spike counts (at most the number of units), else "
        "twice the data's dimension, at most 16: twice the number of channels, or for field "
        "potentials prepared by read_lfp twice the principal components for 95 percent of the "
        "variance", cli=True, metavar="M")
    hidden_dim: int | None = _setting(
        None, "hidden width of the shallow PLRNNs; none: 64 per 3 latent units, rounded up "
        "(64 for M <= 3, 128 for M = 4-6, 192 for M = 7-9, 256 for M = 10-12): "
        "higher-dimensional data need a wider map to reproduce their power spectrum",
        cli=True, metavar="H")
    n_bases: int = _setting(8, "number of bases of the dendritic PLRNN")

    def check(self):
        _choice("model", self.model, ("auto", *LATENT_MODEL_NAMES))
        _int_at_least("latent_dim", self.latent_dim, 1, allow_none=True,
                      extra="None (chosen from the data) or ")
        _int_at_least("hidden_dim", self.hidden_dim, 1, allow_none=True,
                      extra="None (chosen from the latent size) or ")
        _int_at_least("n_bases", self.n_bases, 1)


@dataclass(frozen=True)
class ObservationConfig:
    """The observation layer (read-out) and the processing of the data it inverts."""

    observation: str = _setting(
        "auto", "observation layer: poisson for spike counts, gaussian for continuous data",
        cli=True, choices=("auto", "gaussian", "poisson"))
    link: str = _setting("exp", "link of the Poisson layer", choices=("exp", "softplus"))
    smoothing: float = _setting(
        0.05, "width (s) of the Gaussian kernel that smooths spike counts before the Poisson "
        "layer is inverted; at least one bin; 0 turns smoothing off", metavar="S")

    def check(self):
        _choice("observation", self.observation, ("auto", "gaussian", "poisson"))
        _choice("link", self.link, ("exp", "softplus"))
        _number("smoothing", self.smoothing, low=0, what="a width in seconds >= 0")


@dataclass(frozen=True)
class ForcingConfig:
    """How training forces the latent state onto the data (see :mod:`nwb_dsr.training.forcing`).
    """

    mode: str = _setting(
        "auto", "forcing scheme: sparse (reset every tau bins), shooting (sparse, with the "
        "forcing states learned), gtf (generalized teacher forcing, every step), bptt (no "
        "forcing, clipped BPTT), or auto: shooting for spike counts and field potentials, "
        "sparse otherwise",
        cli=True)
    tau: Any = _setting(
        "auto", "forcing interval in bins, or auto: ln 2 / lambda_max of the data, at least "
        "half the signal's own time scale for continuous data (a quarter of it for spike "
        "counts and field potentials)", cli=True, metavar="auto|N")
    alpha: float | None = _setting(
        None, "forcing strength in (0, 1] (default: the scheme's, 1 for sparse, 0.1 for gtf)")
    continuity: float = _setting(
        1.0, "weight of the continuity term of shooting (learned forcing states)")
    seq_len: int | None = _setting(
        None, "training window in steps (default: the scheme's: tau for sparse and shooting, "
        "100 for gtf, 200 for bptt)")

    def check(self):
        if not isinstance(self.mode, str) or not self.mode:
            raise ValueError(f"mode must be the name of a forcing scheme; got {self.mode!r}.")
        if isinstance(self.tau, str):
            if self.tau != "auto":
                raise ValueError(f"tau must be 'auto' or an integer number of bins >= 1; got "
                                 f"{self.tau!r}.")
        elif not _is_int(self.tau) or self.tau < 1:
            raise ValueError(f"tau must be 'auto' or an integer number of bins >= 1; got "
                             f"{self.tau!r}.")
        _number("alpha", self.alpha, low=0, high=1, low_open=True, allow_none=True,
                what="a forcing strength in (0, 1] (or None for the scheme's default)")
        _number("continuity", self.continuity, low=0, what="a weight >= 0")
        _int_at_least("seq_len", self.seq_len, 1, allow_none=True)


@dataclass(frozen=True)
class OptimizationConfig:
    """Gradient steps, their schedule and the budget."""

    batch_size: int = _setting(256, "windows per gradient step")
    batches_per_epoch: Any = _setting(
        "auto", "gradient steps per epoch, or auto: one pass over the training windows (their "
        "number divided by batch_size), at least 10 and at most 50, so that the budget of "
        "epochs follows the amount of data (at least 20 for spike counts and 50 for field "
        "potentials, whose shooting windows are few)", cli=True, metavar="auto|N")
    lr: float = _setting(3e-3, "initial learning rate")
    lr_final: float = _setting(1e-4, "learning rate at the end of training")
    optimizer: str = _setting("adam", "optimizer", choices=("adam", "radam"))
    schedule: str = _setting("exponential", "learning-rate schedule",
                             choices=("exponential", "cosine", "constant"))
    epochs: int | None = _setting(200, "largest number of epochs", cli=True, metavar="N")
    max_time: float | None = _setting(
        None, "wall-clock budget in seconds for the whole fit (all ensemble members); it only "
        "stops training early: the learning-rate schedule follows the epochs, so a fit that "
        "ends within its budget is the same on a busy and on an idle machine. The final check "
        "of the best checkpoints runs after training stops and is not cut short, so a fit can "
        "end after its budget (on the README's benchmarks by up to a tenth of it)", cli=True,
        metavar="S")
    ema_decay: float = _setting(
        0.0, "weight averaging: decay per gradient step of an exponential moving average of "
        "the model's parameters (latent map and read-out) that validation, the final check, "
        "the callback and the fitted model then use, while the gradient steps move the raw "
        "parameters (0.995: about the last 200 steps); at step n the decay is at most "
        "(1 + n)/(10 + n), so the first steps soon outweigh the initial state; 0: no averaging "
        "(the parameters of the last step)")
    grad_clip: float | None = _setting(
        None, "gradient-norm clip (default: the scheme's, 10 for bptt, 1 otherwise: a rare "
        "large gradient of a chaotic window otherwise throws the map onto a fixed point)")
    validation_fraction: float = _setting(
        0.1, "fraction at the end of each segment held back to select the best model")
    eval_every: Any = _setting(
        "auto", "epochs between validations; auto: 5, and 10 for spike counts (whose "
        "validation draws and smooths counts of every unit along its free runs, and which run "
        "their whole schedule)", metavar="auto|N")
    patience: Any = _setting(
        "auto", "stop after this many validations without improvement of the best score "
        "(validations whose free run collapsed do not count); auto: 10; None: never stop "
        "early", metavar="auto|N")
    ensemble: Any = _setting(
        "auto", "fits from several seeds (the first is seed): the member with the best validation "
        "score becomes the model, and every member's lambda_max, D_stsp, D_H and held-out "
        "likelihood are kept (members_) to show the spread; auto: 2 for spike counts and "
        "field potentials, 1 otherwise; 1: a single fit", cli=True, metavar="auto|N")
    restarts: Any = _setting(
        "auto", "further members fitted, one at a time, while the selected one collapsed (its "
        "free run came to rest, flattened or exploded in validation or the final check), each "
        "from the next ensemble seed and with the time budget left; auto: 1 for continuous "
        "data, 0 for spike counts (which have two members already); 0: never", metavar="auto|N")

    def check(self):
        _int_at_least("batch_size", self.batch_size, 1)
        if self.eval_every != "auto":
            _int_at_least("eval_every", self.eval_every, 1, extra="'auto' or ")
        if self.batches_per_epoch != "auto":
            _int_at_least("batches_per_epoch", self.batches_per_epoch, 1, extra="'auto' or ")
        _int_at_least("epochs", self.epochs, 1, allow_none=True)
        if self.patience != "auto":
            _int_at_least("patience", self.patience, 1, allow_none=True,
                          extra="'auto', None or ")
        if self.ensemble != "auto":
            _int_at_least("ensemble", self.ensemble, 1, extra="'auto' or ")
        if self.restarts != "auto":
            _int_at_least("restarts", self.restarts, 0, extra="'auto' or ")
        _number("lr", self.lr, low=0, low_open=True, what="a positive learning rate")
        _number("lr_final", self.lr_final, low=0, low_open=True,
                what="a positive learning rate")
        _number("ema_decay", self.ema_decay, low=0, high=1, high_open=True,
                what="a decay in [0, 1) (0: no averaging)")
        _choice("optimizer", self.optimizer, ("adam", "radam"))
        _choice("schedule", self.schedule, ("exponential", "cosine", "constant"))
        _number("max_time", self.max_time, low=0, low_open=True, allow_none=True,
                what="a positive number of seconds (or None)")
        _number("grad_clip", self.grad_clip, low=0, low_open=True, allow_none=True,
                what="a positive gradient norm (or None for the scheme's default)")
        _number("validation_fraction", self.validation_fraction, low=0, high=0.99,
                what="a fraction in [0, 1)")
        if self.epochs is None and self.max_time is None:
            raise ValueError("give epochs, max_time, or both, so that training ends.")


@dataclass(frozen=True)
class EvaluationConfig:
    """The evaluation protocol (see :class:`nwb_dsr.protocol.EvaluationProtocol`)."""

    n_val_steps: int = _setting(
        10_000, "steps of each free run compared with the held-back data in validation and by "
        "score, whatever their length")
    n_val_starts: int = _setting(
        5, "free runs in validation and score, started from bins spread over the held-back "
        "data: a map with a fixed point that attracts some starts is caught and ranked "
        "after the others (one start lets it be selected)")
    dh_weight: float = _setting(
        4.0, "weight of D_H in the model-selection score D_stsp + weight * D_H")
    n_final_checks: Any = _setting(
        "auto", "checkpoints with the best validation scores that are checked again when "
        "training ends, with longer free runs (n_final_steps) from the same starts on the "
        "held-back data; the one with the best score of that check becomes the model (a map "
        "that leaves its attractor for a fixed point after the validation runs is caught); "
        "auto: 8, 1 for spike counts (whose check costs several times more); 1: the best "
        "validation checkpoint, no final check", metavar="auto|N")
    selection: str = _setting(
        "auto", "how the final check ranks the best checkpoints: score (the selection score "
        "D_stsp + dh_weight * D_H on the held-back data), spectrum (D_stsp + 100 * D_H of 10 "
        "runs from states of the training data against the training data, after the "
        "checkpoints whose typical run, the median of the 10, keeps its dominant rhythm within "
        "10 percent), or auto: spectrum for field potentials prepared by read_lfp, score "
        "otherwise",
        choices=("auto", "score", "spectrum"))
    n_final_steps: int = _setting(
        100_000, "steps of each free run of the final check of the n_final_checks best "
        "checkpoints (at least n_val_steps; as long as the papers' test runs: on lorenz63 "
        "and eeg_tde, checkpoints that passed runs of 50,000 steps came to rest or exploded "
        "later)")
    n_final_probes: int = _setting(
        32, "free runs of the final check started from the forced states of bins spread over "
        "the training data, and one from the mean state (the forced state of the read-out "
        "offset), n_val_steps steps each, checked for collapse only (not scored): a "
        "map whose fixed point attracts states that the starts on the held-back data missed "
        "is caught; without a final check (n_final_checks 1, the default for spike counts) "
        "the chosen checkpoint still runs from these states, and the runs that become "
        "non-finite or explode are counted (history_.probes_runaway) and warned about, "
        "without changing the choice; 0: none")

    def check(self):
        _int_at_least("n_val_steps", self.n_val_steps, 100)
        _int_at_least("n_val_starts", self.n_val_starts, 1)
        _number("dh_weight", self.dh_weight, low=0, what="a weight >= 0")
        if self.n_final_checks != "auto":
            _int_at_least("n_final_checks", self.n_final_checks, 1, extra="'auto' or ")
        _choice("selection", self.selection, ("auto", "score", "spectrum"))
        _int_at_least("n_final_steps", self.n_final_steps, 100)
        _int_at_least("n_final_probes", self.n_final_probes, 0)
        if self.n_final_steps < self.n_val_steps:
            raise ValueError(f"n_final_steps must be at least n_val_steps "
                             f"({self.n_val_steps}): the final check runs longer than "
                             f"validation; got {self.n_final_steps!r}.")


@dataclass(frozen=True)
class RunConfig:
    """Where and how a fit runs."""

    device: str = _setting("cpu", "where to train", cli=True, choices=("cpu", "cuda", "auto"))
    seed: int = _setting(0, "seed of initialisation, window sampling and generation", cli=True,
                         metavar="N")
    progress: bool = _setting(True, "show a progress bar")
    warm_start: bool = _setting(
        False, "fitting a fitted estimator again continues from its parameters")

    def check(self):
        if not (self.device in ("cpu", "cuda", "auto") or str(self.device).startswith("cuda:")):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto'; got {self.device!r}.")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer; got {self.seed!r}.")


#: Section name -> section class, in order.
SECTIONS = {"model": ModelConfig, "observation": ObservationConfig, "forcing": ForcingConfig,
            "optimization": OptimizationConfig, "evaluation": EvaluationConfig,
            "run": RunConfig}


def _flat_index() -> dict:
    index = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            index[f.name] = (section, f)
    return index


@dataclass(frozen=True)
class DSRConfig:
    """All settings of a fit, in sections; each setting has one flat name (the DSR keyword).

    Build it with :meth:`from_params` (flat names, as :class:`nwb_dsr.DSR` takes them) or from
    sections; :meth:`check` validates every setting with a message that names it.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    forcing: ForcingConfig = field(default_factory=ForcingConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @staticmethod
    def settings() -> dict:
        """{flat name: (section name, dataclass field)} for every setting, in order."""
        return _flat_index()

    @staticmethod
    def defaults() -> dict:
        """{flat name: default value}."""
        return {k: (f.default if f.default is not MISSING else f.default_factory())
                for k, (_, f) in _flat_index().items()}

    @classmethod
    def from_params(cls, **params) -> "DSRConfig":
        """A checked configuration from flat settings (defaults for the ones not given)."""
        index = _flat_index()
        unknown = sorted(set(params) - set(index))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; valid ones are {list(index)}.")
        by_section = {name: {} for name in SECTIONS}
        for k, v in params.items():
            by_section[index[k][0]][k] = v
        cfg = cls(**{name: SECTIONS[name](**vals) for name, vals in by_section.items()})
        return cfg.check()

    @classmethod
    def from_dict(cls, nested: dict) -> "DSRConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        flat = {}
        for name in SECTIONS:
            flat.update(nested.get(name, {}))
        return cls.from_params(**flat)

    def params(self) -> dict:
        """{flat name: value} of every setting."""
        out = {}
        for name in SECTIONS:
            out.update(asdict(getattr(self, name)))
        return out

    def to_dict(self) -> dict:
        """Nested {section: {setting: value}} (JSON-able)."""
        return {name: asdict(getattr(self, name)) for name in SECTIONS}

    def check(self) -> "DSRConfig":
        for name in SECTIONS:
            getattr(self, name).check()
        return self

    def replace(self, **params) -> "DSRConfig":
        """A copy with some flat settings changed."""
        return type(self).from_params(**{**self.params(), **params})


@dataclass(frozen=True)
class ResolvedConfig:
    """A configuration with every rule turned into a number for one data set.

    Produced by :func:`nwb_dsr.policies.resolve`; everything downstream of it (models, trainer,
    forcing scheme, evaluation protocol, NWB record) reads these values only.

    Attributes
    ----------
    settings : DSRConfig
        The settings with ``tau``, ``latent_dim``, ``mode``, ``observation``, ``alpha``,
        ``seq_len``, ``grad_clip``, ``batches_per_epoch``, ``patience`` and ``n_final_checks``
        made concrete (``grad_clip`` None: no clipping; ``patience`` None: no early stop).
    kind : {"counts", "continuous"}
    bin_size : float
        Seconds per bin.
    n_channels : int
    smoothing_bins : float
        The counts' smoothing kernel in bins (0 for continuous data or no smoothing).
    tau_info : dict
        How ``tau`` was obtained (``{"method": "fixed"}`` or the λ_max estimate).
    """

    settings: DSRConfig
    kind: str
    bin_size: float
    n_channels: int
    smoothing_bins: float
    tau_info: dict = field(default_factory=dict)

    def __getattr__(self, name):
        # the resolved sections, for short access: resolved.forcing.tau
        if name in SECTIONS:
            return getattr(self.settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_dict(self) -> dict:
        """JSON-able record: the sections plus the data-derived values."""
        return {**self.settings.to_dict(), "data": {
            "kind": self.kind, "bin_size": float(self.bin_size),
            "n_channels": int(self.n_channels), "smoothing_bins": float(self.smoothing_bins),
            "tau_info": self.tau_info}}

    @classmethod
    def from_dict(cls, d: dict) -> "ResolvedConfig":
        data = dict(d.get("data", {}))
        sections = {}
        for name, sec in SECTIONS.items():
            sections[name] = sec(**d.get(name, {}))
        return cls(settings=DSRConfig(**sections), kind=data["kind"],
                   bin_size=float(data["bin_size"]), n_channels=int(data["n_channels"]),
                   smoothing_bins=float(data.get("smoothing_bins", 0.0)),
                   tau_info=dict(data.get("tau_info") or {}))
