"""Test-session settings shared by tests/ and the doctests in nwb_dsr/."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    # The models under test are tiny: one intra-op thread avoids oversubscribing small CI
    # machines, where two threads per op make each step several times slower.
    import torch

    torch.set_num_threads(1)
