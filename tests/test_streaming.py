"""NWB files streamed from an http(s) URL (remfile + h5py), served by a local test server.

The server (``file_server`` in conftest.py) listens on 127.0.0.1 only and counts the bytes it
sends; a variant ignores Range headers, and unknown names get 404.
"""
from __future__ import annotations

import contextlib
import io
import json
import socket

import h5py
import numpy as np
import pynwb
import pytest

import nwb_dsr
from nwb_dsr.cli import main
from nwb_dsr.datasets import write_lorenz_nwb
from nwb_dsr.io.remote import RemoteFileError, is_url, set_cache, url_name

from conftest import SHARED

TINY = ["--epochs", "1", "--batches-per-epoch", "2", "--latent-dim", "2", "--hidden-dim", "4",
        "--tau", "5", "--no-progress", "--lyapunov-steps", "200", "--n-generate", "50"]


@pytest.fixture(scope="module")
def lfp_heavy(tmp_path_factory):
    """A recording whose bulk is LFP: 6 units, 96 LFP channels at 1 kHz for 120 s."""
    d = tmp_path_factory.mktemp("served")
    path = write_lorenz_nwb(d / "lfp_heavy.nwb", n_units=6, duration=120.0,
                            n_lfp_channels=96, lfp_rate=1000.0, seed=3)
    return path


def _same_obs(a, b):
    assert a.kind == b.kind and a.bin_size == b.bin_size
    assert np.array_equal(np.asarray(a.ids), np.asarray(b.ids))
    assert len(a.data) == len(b.data)
    for x, y in zip(a.data, b.data):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert np.allclose(a.start_times, b.start_times)


def _lfp_bytes(path) -> int:
    sizes = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: sizes.append(obj.id.get_storage_size())
                     if isinstance(obj, h5py.Dataset) and "LFP" in name else None)
    return sum(sizes)


def test_units_read_fetches_a_small_fraction_and_equals_the_local_read(lfp_heavy,
                                                                       file_server):
    size = lfp_heavy.stat().st_size
    assert _lfp_bytes(lfp_heavy) > 0.8 * size  # the file's bulk is LFP
    server = file_server(lfp_heavy.parent)
    streamed = nwb_dsr.read_units(server.url(lfp_heavy.name), bin_size=0.01)
    fetched = server.sent[lfp_heavy.name]
    print(f"units read of a {size} B file fetched {fetched} B ({100 * fetched / size:.1f} %)")
    assert fetched <= 0.10 * size
    local = nwb_dsr.read_units(lfp_heavy, bin_size=0.01)
    _same_obs(streamed, local)
    assert streamed.provenance["source"] == server.url(lfp_heavy.name)
    assert all(r[1] for r in server.requests)  # every request asked for a byte range


def test_lfp_and_info_streamed_equal_local(lfp_heavy, file_server):
    server = file_server(lfp_heavy.parent)
    url = server.url(lfp_heavy.name)
    kw = dict(channels=[0, 5, 7], interval=(10.0, 14.0), rate=250.0)
    _same_obs(nwb_dsr.read_lfp(url, **kw), nwb_dsr.read_lfp(lfp_heavy, **kw))
    remote, local = nwb_dsr.file_info(url), nwb_dsr.file_info(lfp_heavy)
    assert remote.pop("path") == url and local.pop("path") == str(lfp_heavy.resolve())
    assert remote == local


REAL = [("rat_m1_lever_taps.nwb", "units"), ("pynapple_phy_A8604-211122.nwb", "units"),
        ("eeg_openbci_8ch_blinks_jaw_alpha.nwb", "lfp")]


@pytest.mark.parametrize("name,source", REAL, ids=[n.split("_")[0] for n, _ in REAL])
def test_real_files_streamed_equal_local(name, source, file_server):
    folder = SHARED / "nwb"
    if not (folder / name).is_file():
        pytest.skip(f"shared NWB files not found at {folder}")
    server = file_server(folder)
    url = server.url(name)
    if source == "units":
        _same_obs(nwb_dsr.read_units(url, bin_size=0.05), nwb_dsr.read_units(folder / name,
                                                                               bin_size=0.05))
    else:
        kw = dict(interval=(1.0, 5.0), rate=125.0)
        _same_obs(nwb_dsr.read_lfp(url, **kw), nwb_dsr.read_lfp(folder / name, **kw))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case,match", [
    ("404", r"answered 404 .* check the URL"),
    ("no_ranges", r"does not support range requests .* download it and give its path"),
    ("unreachable", r"cannot reach .* check the URL and the network"),
])
def test_stream_errors_are_one_sentence(case, match, lfp_heavy, file_server):
    if case == "404":
        url = file_server(lfp_heavy.parent).url("missing.nwb")
    elif case == "no_ranges":
        url = file_server(lfp_heavy.parent, ranges=False).url(lfp_heavy.name)
    else:
        url = f"http://127.0.0.1:{_free_port()}/rec.nwb"
    for reader in (lambda: nwb_dsr.read_units(url, bin_size=0.01), lambda: nwb_dsr.read_lfp(url),
                   lambda: nwb_dsr.file_info(url)):
        with pytest.raises(RemoteFileError, match=match) as info:
            reader()
        assert "\n" not in str(info.value)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["info", url]) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nwb-dsr info: error:")


def test_cache_serves_a_second_read_without_fetching(lfp_heavy, file_server, tmp_path):
    server = file_server(lfp_heavy.parent)
    url = server.url(lfp_heavy.name)
    old = set_cache(tmp_path / "cache")
    try:
        first = nwb_dsr.read_units(url, bin_size=0.02)
        sent = server.sent[lfp_heavy.name]
        second = nwb_dsr.read_units(url, bin_size=0.02)
    finally:
        set_cache(old)
    _same_obs(first, second)
    assert any((tmp_path / "cache").rglob("*"))
    assert server.sent[lfp_heavy.name] == sent + 1  # only the size probe: one byte
    assert len(server.requests) > 0


def test_cli_info_and_fit_of_a_url(tmp_path, file_server):
    rec = write_lorenz_nwb(tmp_path / "rec.nwb", n_units=4, duration=6.0, n_lfp_channels=2)
    server = file_server(tmp_path)
    url = server.url("rec.nwb")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info", url, "--json"]) == 0
    payload = json.loads(out.getvalue().strip().splitlines()[-1])
    assert payload["file"] == url and payload["info"]["units"]["n_units"] == 4

    target = tmp_path / "fitted" / "from_url.nwb"
    target.parent.mkdir()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["fit", url, "--source", "units", "--bin-size", "0.02", "--out",
                     str(target), "--json", *TINY]) == 0
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["source"] == url and summary["output"] == str(target)
    assert pynwb.validate(path=str(target)) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["from_url.nwb"]  # no leftovers
    fits = nwb_dsr.list_dynamics(target)
    assert [f["name"] for f in fits] == ["dsr"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["fit", url, "--source", "units", "--in-place", *TINY]) == 2
    assert "--in-place needs a local file" in err.getvalue()
    assert rec.is_file()


def test_url_helpers():
    assert is_url("HTTPS://x.org/a.nwb") and not is_url("/data/a.nwb") and not is_url(3)
    assert url_name("https://api.dandiarchive.org/api/assets/abc/download/") == "download.nwb"
    with pytest.raises(nwb_dsr.NWBReadError, match="is a URL; this operation needs a local"):
        from nwb_dsr.io._nwbfile import check_path
        check_path("http://127.0.0.1:1/a.nwb")
