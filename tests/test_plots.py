"""Figures: every plot returns a Figure, draws into given axes and writes files to tmp_path."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nwb_dsr.analysis import (plot_attractor, plot_loss, plot_lyapunov, plot_raster,  # noqa: E402
                              plot_spectra, plot_tau_sweep)
from nwb_dsr.training.trainer import TrainingHistory  # noqa: E402

RNG = np.random.default_rng(0)


def _written(path):
    return path.is_file() and path.stat().st_size > 1000


def test_plot_loss_from_history_and_dict(tmp_path):
    h = TrainingHistory(loss=[1.0, 0.6, 0.4, 0.3], val_epochs=[2, 4], val_score=[0.9, 0.5],
                        best_epoch=4)
    fig = plot_loss(h, path=tmp_path / "loss.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and _written(tmp_path / "loss.png")
    fig = plot_loss({"loss": [-1.0, -2.0]})  # negative losses (Poisson): linear axis
    assert fig.axes[0].get_yscale() == "linear" and len(fig.axes) == 1


@pytest.mark.parametrize("n_dims, projection", [(1, None), (2, None), (3, "3d"), (7, "3d")])
def test_plot_attractor_dims(tmp_path, n_dims, projection):
    x = RNG.normal(size=(300, n_dims))
    fig = plot_attractor(x, x * 0.5, path=tmp_path / "a.png")
    assert len(fig.axes) == 2 and _written(tmp_path / "a.png")
    assert (fig.axes[0].name == "3d") == (projection == "3d")


def test_plot_attractor_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot(projection="3d")
    assert plot_attractor(RNG.normal(size=(100, 3)), RNG.normal(size=(100, 3)), ax=ax) is fig
    assert len(ax.lines) == 2


def test_plot_spectra(tmp_path):
    t = np.arange(4000)[:, None] * 0.01
    x = np.hstack([np.sin(5 * t), np.cos(3 * t), np.sin(t), np.cos(t)])
    fig = plot_spectra(x, x + 0.1 * RNG.normal(size=x.shape), dt=0.01, path=tmp_path / "s.png")
    assert len(fig.axes) == 3 and _written(tmp_path / "s.png")
    assert fig.axes[0].get_title().startswith("dim 1: D_H = ")


def test_plot_raster_samples_rates(tmp_path):
    counts = RNG.poisson(0.5, size=(300, 5))
    fig = plot_raster(counts, np.full((300, 5), 0.5), dt=0.01, path=tmp_path / "r.png")
    assert len(fig.axes) == 2 and _written(tmp_path / "r.png")
    n_true = sum(len(c.get_positions()) for c in fig.axes[0].collections)
    assert n_true == counts.sum()


def test_plot_lyapunov(tmp_path):
    fig = plot_lyapunov([-14.5, 0.9, 0.0], path=tmp_path / "l.png")
    assert "λ_max = 0.9" in fig.axes[0].get_title() and _written(tmp_path / "l.png")


def test_plot_tau_sweep_with_nan_and_baseline(tmp_path):
    taus = [1, 10, 46, 200]
    d = np.array([[1.0, 1.2], [0.5, 0.4], [0.3, np.nan], [np.nan, np.nan]])
    fig = plot_tau_sweep(taus, d, d / 4, tau_auto=46, tau_pred=76.5,
                         baseline={"dstsp": [3.0, 4.0], "dh": [0.8, 0.9]},
                         path=tmp_path / "sweep.png")
    assert len(fig.axes) == 2 and _written(tmp_path / "sweep.png")
    assert fig.axes[0].get_xscale() == "log"


@pytest.mark.parametrize("call, match", [
    (lambda: plot_attractor(np.zeros((10, 3)), np.zeros((10, 2))), "same number of dimensions"),
    (lambda: plot_raster(np.zeros((10, 3)), np.zeros((10, 2))), "same number of units"),
    (lambda: plot_tau_sweep([1, 2], np.ones(3), np.ones(3)), "one row per tau"),
    (lambda: plot_spectra(np.zeros((0, 2)), np.zeros((5, 2))), "n_steps, n_dims"),
])
def test_plot_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
