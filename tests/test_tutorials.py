"""Execute every tutorial notebook (tutorials/*.ipynb) top to bottom; any cell error fails.

The notebooks are found by glob, so a new one is picked up without editing this file. Each runs
in a fresh kernel of the running interpreter (kernel "python3"; jupyter_client starts it with
``sys.executable``) with ``tmp_path`` as its working directory and as its temporary folder (the
notebooks' ``tempfile.mkdtemp()`` files land there and are cleaned up with it), and with one
BLAS/OpenMP thread: the models are small, and on a shared machine one thread is faster and the
timing steadier.
Deselect with ``-m "not tutorial"``.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
TIMEOUT = 300  # seconds per cell


def _error_text(err: Exception) -> str:
    """The failing cell's traceback as plain text (nbclient's message carries ANSI colours)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(err))


@pytest.mark.tutorial
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_runs(path, tmp_path, monkeypatch):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{_error_text(err)}", pytrace=False)
    seconds = time.perf_counter() - start
    print(f"{path.name}: {seconds:.1f} s")
    n_figures = sum(1 for cell in nb.cells if cell.cell_type == "code"
                    for out in cell.get("outputs", [])
                    if "image/png" in out.get("data", {}))
    assert n_figures >= 1, f"{path.name} drew no figure"


def test_tutorials_are_stored_without_outputs():
    """The notebooks are kept clean (no outputs, no execution counts) so the repo stays small."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                 and (c.get("outputs") or c.get("execution_count") is not None)]
        assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"
