"""The ndx-dsr extension: generated spec, namespace loading, types and mock factories."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pynwb
import pytest
from pynwb import NWBHDF5IO, get_class
from pynwb.testing.mock.file import mock_NWBFile

import nwb_dsr.nwb as dnwb
from nwb_dsr.nwb import read_dynamics, read_results
from nwb_dsr.nwb.testing import (mock_DynamicalSystemModel, mock_GeneratedTrajectory,
                                 mock_LatentTrajectory, mock_ModelParameters, mock_PredictedMean)
from nwb_dsr.spec import create_extension_spec

REPO = Path(__file__).resolve().parents[1]
TYPES = ["DynamicalSystemModel", "ModelParameters", "ModelParameter", "LatentTrajectory",
         "GeneratedTrajectory", "PredictedMean"]


def test_generated_spec_matches_shipped_and_repo_copies(tmp_path):
    create_extension_spec.main(["--out", str(tmp_path)])
    for fname in ("ndx-dsr.namespace.yaml", "ndx-dsr.extensions.yaml"):
        fresh = (tmp_path / fname).read_text()
        assert fresh == (REPO / "nwb_dsr" / "spec" / fname).read_text(), (
            f"nwb_dsr/spec/{fname} is stale; run python -m nwb_dsr.spec.create_extension_spec")
        assert fresh == (REPO / "schemas" / fname).read_text(), (
            f"schemas/{fname} is stale; run python -m nwb_dsr.spec.create_extension_spec")


def test_namespace_loaded_once_and_classes_registered(monkeypatch):
    assert "ndx-dsr" in pynwb.available_namespaces()
    assert dnwb.namespace_path() == REPO / "nwb_dsr" / "spec" / "ndx-dsr.namespace.yaml"

    def fail(*args, **kwargs):
        raise AssertionError("load_namespaces called a second time")

    monkeypatch.setattr(pynwb, "load_namespaces", fail)
    reloaded = importlib.reload(dnwb)  # must not load the namespace again
    for name in TYPES:
        assert get_class(name, "ndx-dsr") is getattr(reloaded, name)


def test_types_inherit_from_core():
    assert issubclass(dnwb.DynamicalSystemModel, pynwb.core.NWBDataInterface)
    for name in ("LatentTrajectory", "GeneratedTrajectory", "PredictedMean"):
        assert issubclass(getattr(dnwb, name), pynwb.base.TimeSeries)


def test_mock_factories_round_trip_through_a_file(tmp_path):
    nwbfile = mock_NWBFile()
    model = mock_DynamicalSystemModel(nwbfile=nwbfile, name="fit")
    mock_DynamicalSystemModel(nwbfile=nwbfile, name="fit_lstm", model="lstm",
                              observation="gaussian")
    for factory in (mock_LatentTrajectory, mock_GeneratedTrajectory, mock_PredictedMean):
        factory(name="extra_" + factory.__name__, nwbfile=nwbfile)
    assert sorted(mock_ModelParameters().model_parameters)[0] == "latent.A"
    path = tmp_path / "mock.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    assert pynwb.validate(path=str(path)) == []
    with NWBHDF5IO(str(path), "r") as io:
        back = io.read().processing["dynamics"]["fit"]
        assert isinstance(back, dnwb.DynamicalSystemModel)
        np.testing.assert_array_equal(back.latent.data[:], model.latent.data[:])
        assert back.latent_model == "plrnn" and int(back.tau) == 5
    est = read_dynamics(path, name="fit_lstm")
    assert est.latent_model_.name == "lstm" and est.generate(3).shape == (3, 4)
    res = read_results(path, name="fit")
    assert res["metrics"]["D_stsp"] == 0.5
    assert res["lyapunov_spectrum"].shape == (2,)


def test_namespace_path_falls_back_to_repo_schemas(monkeypatch):
    real_is_file = Path.is_file

    def no_packaged_copy(self):
        return False if self.parent.name == "spec" else real_is_file(self)

    monkeypatch.setattr(Path, "is_file", no_packaged_copy)
    assert dnwb.namespace_path() == REPO / "schemas" / "ndx-dsr.namespace.yaml"
    monkeypatch.setattr(Path, "is_file", lambda self: False)
    with pytest.raises(FileNotFoundError, match="create_extension_spec"):
        dnwb.namespace_path()
