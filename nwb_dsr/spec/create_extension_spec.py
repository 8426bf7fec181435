"""Generate the YAML specification of the ``ndx-dsr`` NWB extension.

Run ``python -m nwb_dsr.spec.create_extension_spec`` after editing this script; it writes
``ndx-dsr.namespace.yaml`` and ``ndx-dsr.extensions.yaml`` to the repository's top-level
``schemas/`` folder and to ``nwb_dsr/spec/`` (the copy shipped in the wheel), exactly as
ndx-template does (pynwb.spec builders and ``export_spec``).

Types
-----
DynamicalSystemModel (NWBDataInterface)
    One fitted dynamical-systems reconstruction: hyper-parameters, every parameter array, the
    training record, the link to the source Units table or TimeSeries and the selection used,
    metrics, the Lyapunov spectrum, and its trajectories as child series.
ModelParameter (NWBData)
    One parameter array of the fitted model, named like ``latent.W1``.
ModelParameters (NWBContainer)
    The group of ModelParameter datasets of one model.
LatentTrajectory (TimeSeries)
    Inferred (data-forced) latent states on the recording's time base.
GeneratedTrajectory (TimeSeries)
    A free-running simulation of the model, with its initial state and seed.
PredictedMean (TimeSeries)
    One-step-ahead predicted rates (spike counts) or means (continuous data) per unit/channel.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pynwb.spec import (NWBAttributeSpec, NWBDatasetSpec, NWBGroupSpec, NWBLinkSpec,
                        NWBNamespaceBuilder, export_spec)

NAMESPACE = "ndx-dsr"
VERSION = "0.1.0"

__all__ = ["main", "build_specs", "NAMESPACE", "VERSION"]


def _attr(name, dtype, doc, required=True, **kw):
    return NWBAttributeSpec(name=name, dtype=dtype, doc=doc, required=required, **kw)


def _segment_starts():
    return NWBDatasetSpec(
        name="segment_starts", dtype="int64", dims=["num_segments"], shape=[None], quantity="?",
        doc=("Index of the first sample of each recording segment (trial) in this series; the "
             "series concatenates the segments, whose timestamps are given in 'timestamps'."))


def build_specs():
    """Build the namespace builder and the new type specs.

    Returns
    -------
    ns_builder : pynwb.spec.NWBNamespaceBuilder
    new_data_types : list of spec objects
    """
    ns_builder = NWBNamespaceBuilder(
        name=NAMESPACE,
        version=VERSION,
        doc=("Dynamical-systems reconstruction (DSR) of neural recordings: a latent RNN fitted by "
             "sparsely forced BPTT (nwb_dsr), with its parameters, training record, metrics, "
             "Lyapunov spectrum and latent, generated and predicted trajectories."),
        author=["nwb_dsr developers"],
        contact=["https://github.com/nwb-dsr/nwb_dsr"],
    )
    for t in ("NWBContainer", "NWBDataInterface", "NWBData", "TimeSeries", "Units"):
        ns_builder.include_type(t, namespace="core")
    ns_builder.include_type("DynamicTable", namespace="hdmf-common")

    model_parameter = NWBDatasetSpec(
        neurodata_type_def="ModelParameter",
        neurodata_type_inc="NWBData",
        dtype="numeric",
        dims=[["dim0"], ["dim0", "dim1"], ["dim0", "dim1", "dim2"],
              ["dim0", "dim1", "dim2", "dim3"]],
        shape=[[None], [None, None], [None, None, None], [None, None, None, None]],
        doc=("One parameter array of a fitted model, named by its place in the model, e.g. "
             "'latent.W1' (latent map) or 'observation.B' (observation layer); a scalar "
             "parameter is stored with shape (1,)."),
    )

    model_parameters = NWBGroupSpec(
        neurodata_type_def="ModelParameters",
        neurodata_type_inc="NWBContainer",
        doc="The parameter arrays of a fitted model, one ModelParameter dataset each.",
        datasets=[NWBDatasetSpec(neurodata_type_inc="ModelParameter", quantity="*",
                                 doc="One parameter array.")],
    )

    latent = NWBGroupSpec(
        neurodata_type_def="LatentTrajectory",
        neurodata_type_inc="TimeSeries",
        doc=("Latent states of a fitted model inferred from the recording (the data-forced states "
             "z_t of the observation layer's inverse: pinv(B) (x_t - b) for a Gaussian layer, "
             "the maximum-likelihood latent of smoothed counts for a Poisson layer), on the "
             "recording's time base: bin centres."),
        datasets=[
            NWBDatasetSpec(name="data", dtype="numeric", dims=["num_times", "num_latent_dims"],
                           shape=[None, None], doc="Latent state per bin."),
            _segment_starts(),
        ],
    )

    generated = NWBGroupSpec(
        neurodata_type_def="GeneratedTrajectory",
        neurodata_type_inc="TimeSeries",
        doc=("Free-running trajectory of a fitted model (no forcing), in simulated time starting "
             "at 0 with the model's bin size. Running the stored model from 'initial_state' "
             "reproduces 'data' and 'mean'; 'samples' are drawn with 'seed'."),
        datasets=[
            NWBDatasetSpec(name="data", dtype="numeric", dims=["num_times", "num_latent_dims"],
                           shape=[None, None], doc="Generated latent state per step."),
            NWBDatasetSpec(name="initial_state", dtype="numeric", dims=["num_latent_dims"],
                           shape=[None], doc="Latent state the free run starts from (step 0, "
                                             "not included in 'data')."),
            NWBDatasetSpec(name="mean", dtype="numeric", dims=["num_times", "num_channels"],
                           shape=[None, None], quantity="?",
                           doc=("Expected observations of the generated states (counts per bin "
                                "or data units), one column per unit/channel.")),
            NWBDatasetSpec(name="samples", dtype="numeric", dims=["num_times", "num_channels"],
                           shape=[None, None], quantity="?",
                           doc=("Observations drawn from the observation model around 'mean' "
                                "(Poisson counts, or Gaussian noise) with 'seed'.")),
        ],
        attributes=[
            _attr("seed", "int64", "Seed of the random generator used to draw 'samples'."),
            _attr("burn_in", "int64", "Steps run and discarded before the first stored step.",
                  required=False, default_value=0),
        ],
    )

    predicted = NWBGroupSpec(
        neurodata_type_def="PredictedMean",
        neurodata_type_inc="TimeSeries",
        doc=("Rates (Poisson layer; data in counts per bin, conversion = 1/bin_size gives Hz) or "
             "means (Gaussian layer) predicted by a fitted model 'n_ahead' bins ahead from the "
             "forced latent state, on the recording's time base, one column per unit/channel."),
        datasets=[
            NWBDatasetSpec(name="data", dtype="numeric", dims=["num_times", "num_channels"],
                           shape=[None, None], doc="Predicted mean per bin and unit/channel."),
            NWBDatasetSpec(name="channel_ids", dims=["num_channels"], shape=[None],
                           doc=("Id of each column: the Units table id for spike data, the "
                                "channel (electrode) id for continuous data.")),
            _segment_starts(),
        ],
        attributes=[
            _attr("n_ahead", "int64", "Prediction horizon in bins.", required=False,
                  default_value=1),
        ],
    )

    model = NWBGroupSpec(
        neurodata_type_def="DynamicalSystemModel",
        neurodata_type_inc="NWBDataInterface",
        doc=("A dynamical system reconstructed from a recording: a latent map (PLRNN, shallow "
             "PLRNN, dendritic PLRNN, LSTM or RNN) and an observation layer (Gaussian or "
             "Poisson) fitted by sparsely forced BPTT, with everything needed to run it again."),
        attributes=[
            _attr("description", "text", "What was fitted to what, in words."),
            _attr("latent_model", "text", ("Name of the latent map: plrnn, shallow_plrnn, "
                                           "clipped_shallow_plrnn, dendritic_plrnn, lstm, rnn.")),
            _attr("latent_dim", "int64", "Latent dimension M."),
            _attr("state_dim", "int64", "Size of the state vector (2*M for the LSTM: h and c)."),
            _attr("observation_model", "text", "Observation layer: gaussian or poisson."),
            _attr("link", "text", "Link function of the Poisson layer (exp or softplus).",
                  required=False),
            _attr("data_kind", "text", "Kind of the data fitted: counts or continuous."),
            _attr("n_channels", "int64", "Number of units or channels fitted."),
            _attr("bin_size", "float64", "Width of one time bin in seconds."),
            _attr("tau", "int64", "Forcing interval tau in bins."),
            _attr("tau_method", "text", "How tau was chosen: fixed, or the data-driven method."),
            _attr("training_mode", "text", ("sparse (sparse teacher forcing), gtf (generalized "
                                            "teacher forcing) or bptt (clipped-gradient BPTT).")),
            _attr("seed", "int64", "Seed of initialisation, window sampling and generation."),
            _attr("package_version", "text", "Version of nwb_dsr that fitted the model."),
            _attr("epochs", "int64", "Number of training epochs run."),
            _attr("training_seconds", "float64", "Wall-clock training time in seconds."),
            _attr("best_epoch", "int64", "Epoch whose parameters were kept (validation).",
                  required=False),
            _attr("stop_reason", "text", "Why training stopped (epochs, max_time, patience, ...).",
                  required=False),
            _attr("source_file", "text", "Path of the file the data were read from.",
                  required=False),
            _attr("source_object", "text", ("Path of the data object inside that file, e.g. "
                                            "/units or /acquisition/ElectricalSeries."),
                  required=False),
            _attr("selection", "text", ("JSON object: the selection used (unit ids, channels, "
                                        "trials, interval, band, ...)."), required=False),
        ],
        datasets=[
            NWBDatasetSpec(name="config", dtype="text",
                           doc=("The full model state configuration as JSON (format "
                                "nwb_dsr.DSR/1): estimator hyper-parameters, latent and "
                                "observation configs, trainer settings, training history, "
                                "provenance. With 'parameters' it restores the model.")),
            NWBDatasetSpec(name="channel_ids", dims=["num_channels"], shape=[None],
                           doc=("Id of each fitted unit (Units table id) or channel, in the "
                                "column order of the model.")),
            NWBDatasetSpec(name="loss", dtype="float64", dims=["num_epochs"], shape=[None],
                           quantity="?", doc="Training loss per epoch."),
            NWBDatasetSpec(name="lyapunov_spectrum", dtype="float64", dims=["num_exponents"],
                           shape=[None], quantity="?",
                           doc=("Lyapunov exponents of the fitted latent map (QR method), in "
                                "1/s, largest first.")),
        ],
        groups=[
            NWBGroupSpec(name="parameters", neurodata_type_inc="ModelParameters",
                         doc="Every parameter array of the fitted model."),
            NWBGroupSpec(name="metrics", neurodata_type_inc="DynamicTable", quantity="?",
                         doc=("Evaluation metrics, one row each: columns 'metric' (name, e.g. "
                              "D_stsp, D_H, PE(20), co_bps, lambda_max), 'value' and 'unit'.")),
            NWBGroupSpec(name="latent", neurodata_type_inc="LatentTrajectory", quantity="?",
                         doc="Latent trajectory inferred from the recording."),
            NWBGroupSpec(name="generated", neurodata_type_inc="GeneratedTrajectory",
                         quantity="?", doc="Free-running generated trajectory."),
            NWBGroupSpec(name="predicted", neurodata_type_inc="PredictedMean", quantity="?",
                         doc="Predicted rates or means on the recording's time base."),
        ],
        links=[
            NWBLinkSpec(name="source_units", target_type="Units", quantity="?",
                        doc="The Units table the spike counts were binned from."),
            NWBLinkSpec(name="source_series", target_type="TimeSeries", quantity="?",
                        doc="The series (e.g. an ElectricalSeries) the data were read from."),
        ],
    )
    return ns_builder, [model_parameter, model_parameters, latent, generated, predicted, model]


def main(argv=None) -> list:
    """Write the YAML files to ``schemas/`` (repository) and ``nwb_dsr/spec/`` (package).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``--out DIR`` to write to other folders instead).

    Returns
    -------
    list of pathlib.Path
        The folders written to.
    """
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", action="append", type=Path,
                        help="folder to write to (repeatable; default: schemas/ and nwb_dsr/spec/)")
    args = parser.parse_args(argv)
    outs = args.out or [here.parents[1] / "schemas", here]
    for out in outs:
        out.mkdir(parents=True, exist_ok=True)
        ns_builder, types = build_specs()
        export_spec(ns_builder, types, str(out))
        print(f"wrote {out / (NAMESPACE + '.namespace.yaml')} and "
              f"{out / (NAMESPACE + '.extensions.yaml')}")
    return outs


if __name__ == "__main__":
    main()
