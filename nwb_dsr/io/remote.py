"""NWB files read from an http(s) URL with range requests (remfile + h5py).

Every reader (:func:`~nwb_dsr.read_units`, :func:`~nwb_dsr.read_lfp`,
:func:`~nwb_dsr.file_info`) accepts the URL of an NWB file where it accepts a path, for example a
DANDI asset URL. The file is opened lazily, the route pynwb documents for DANDI:
``h5py.File(remfile.File(url))`` and ``NWBHDF5IO(file=...)``. Only the byte ranges that the read
needs are fetched (HDF5 metadata, the datasets read), so spike times can be read from a file whose
bulk is LFP without downloading the LFP.

Before the file is opened, one request for its first byte checks that the server answers and
supports range requests; otherwise one :class:`RemoteFileError` says what is wrong.

A local cache of the fetched byte ranges is off by default. Switch it on for the whole process
with :func:`set_cache` or the environment variable ``NWB_DSR_CACHE``; a second read of the same
file then fetches nothing.

Examples
--------
>>> from nwb_dsr.io.remote import is_url
>>> is_url("https://dandiarchive.org/api/assets/0a1b/download/"), is_url("session.nwb")
(True, False)
"""
from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import NWBReadError

__all__ = ["RemoteFileError", "is_url", "set_cache", "cache_dir", "remote_size", "open_url",
           "local_copy", "url_name"]

#: Environment variable naming a folder for the cache of fetched byte ranges.
CACHE_ENV = "NWB_DSR_CACHE"
#: Seconds to wait for the server's first answer.
TIMEOUT = 30.0

_URL = re.compile(r"^https?://", re.IGNORECASE)
_cache: Path | None = None


class RemoteFileError(NWBReadError):
    """An NWB file given by URL that cannot be streamed (not found, unreachable, or a server
    without range requests)."""


def is_url(source) -> bool:
    """Whether ``source`` is an http(s) URL (a string starting with ``http://`` or ``https://``).

    Parameters
    ----------
    source : object

    Returns
    -------
    bool

    Examples
    --------
    >>> is_url("http://127.0.0.1:8000/a.nwb"), is_url(Path("a.nwb"))
    (True, False)
    """
    return isinstance(source, str) and bool(_URL.match(source.strip()))


def url_name(url: str) -> str:
    """The last path component of a URL (``"session.nwb"``), or ``"remote.nwb"`` if it has none.

    DANDI download URLs end in ``.../download/``; their name is then ``"download.nwb"``.

    Examples
    --------
    >>> url_name("https://example.org/data/rec1.nwb?x=1")
    'rec1.nwb'
    """
    from urllib.parse import unquote, urlparse

    name = unquote(urlparse(url).path.rstrip("/").rsplit("/", 1)[-1])
    if not name:
        return "remote.nwb"
    return name if name.endswith(".nwb") else name + ".nwb"


def set_cache(folder) -> Path | None:
    """Switch the local cache of streamed byte ranges on (a folder) or off (None).

    Parameters
    ----------
    folder : str, path-like or None
        Folder for the cache (created if needed); None turns caching off (the default unless
        the environment variable ``NWB_DSR_CACHE`` names a folder).

    Returns
    -------
    pathlib.Path or None
        The previous setting.

    Examples
    --------
    >>> import tempfile
    >>> old = set_cache(tempfile.mkdtemp())
    >>> cache_dir() is not None
    True
    >>> _ = set_cache(old)
    """
    global _cache
    previous = _cache
    _cache = None if folder is None else Path(folder).expanduser()
    if _cache is not None:
        _cache.mkdir(parents=True, exist_ok=True)
    return previous


def cache_dir() -> Path | None:
    """The folder of the byte-range cache: :func:`set_cache`'s, else ``$NWB_DSR_CACHE``, else
    None (no cache)."""
    if _cache is not None:
        return _cache
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else None


def remote_size(url: str, *, timeout: float = TIMEOUT) -> int:
    """Size in bytes of the file at ``url``, checking that its server supports range requests.

    One request for the first byte (``Range: bytes=0-0``) is made; a server that supports
    ranges answers ``206 Partial Content`` with the total size in ``Content-Range``.

    Parameters
    ----------
    url : str
        http(s) URL of the file.
    timeout : float
        Seconds to wait for the answer.

    Returns
    -------
    int

    Raises
    ------
    RemoteFileError
        If the server cannot be reached, answers with an error status (e.g. 404), or ignores
        range requests.
    """
    import requests

    try:
        response = requests.get(url, headers={"Range": "bytes=0-0"}, stream=True,
                                timeout=timeout)
    except requests.RequestException as err:
        raise RemoteFileError(f"cannot reach {url} ({type(err).__name__}); check the URL and "
                              "the network, or download the file and give its path.") from err
    try:
        status = response.status_code
        if status >= 400:
            raise RemoteFileError(f"the server answered {status} {response.reason} for {url}; "
                                  "check the URL (for DANDI, the asset's download URL).")
        total = response.headers.get("Content-Range", "").rsplit("/", 1)[-1].strip()
        if status != 206 or not total.isdigit():
            raise RemoteFileError(f"the server of {url} does not support range requests "
                                  f"(answered {status} to a request for one byte), so the file "
                                  "cannot be streamed; download it and give its path.")
        return int(total)
    finally:
        response.close()


def _remfile(url: str):
    try:
        import remfile
    except ImportError as err:  # an optional dependency (the "distributed" extra)
        raise RemoteFileError("streaming NWB files from a URL needs the remfile package; "
                              "install it with `pip install remfile` or "
                              "`pip install nwb_dsr[distributed]`.") from err
    size = remote_size(url)
    folder = cache_dir()
    cache = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        cache = remfile.DiskCache(str(folder))
    # one request at a time over one session (a requests.Session is not safe to share between
    # threads), each with a timeout: a stalled connection is retried instead of waiting forever
    rem = remfile.File(url, disk_cache=cache, _size=size, _max_threads=1)
    if getattr(rem, "session", None) is not None:
        rem.session.close()
        rem.session = _timeout_session()
    return rem


def _timeout_session():
    """A requests session whose requests time out after ``TIMEOUT`` s unless told otherwise."""
    import requests

    class TimeoutSession(requests.Session):
        def request(self, *args, **kwargs):
            kwargs.setdefault("timeout", TIMEOUT)
            return super().request(*args, **kwargs)

    return TimeoutSession()


@contextmanager
def open_url(url: str) -> Iterator:
    """Open the NWB (HDF5) file at ``url`` read-only as an :class:`h5py.File`, streamed.

    Parameters
    ----------
    url : str
        http(s) URL of an NWB file stored in HDF5.

    Yields
    ------
    h5py.File
        Closed on exit.

    Raises
    ------
    RemoteFileError
        If the file cannot be fetched (see :func:`remote_size`), or is not an HDF5 NWB 2 file.

    Examples
    --------
    >>> with open_url("http://127.0.0.1:9/missing.nwb") as f:  # doctest: +SKIP
    ...     print(f.attrs["nwb_version"])
    """
    import h5py

    rem = _remfile(url)
    try:
        f = h5py.File(rem, "r")
    except OSError as err:
        raise RemoteFileError(f"{url} could be fetched but is not an HDF5 file h5py can open "
                              f"({err}); give the URL of an NWB file stored in HDF5.") from err
    try:
        if "nwb_version" not in f.attrs:
            raise RemoteFileError(f"{url} is an HDF5 file but not an NWB 2 file (its root has "
                                  "no 'nwb_version' attribute).")
        yield f
    finally:
        f.close()


def download(url: str, dest, *, chunk_size: int = 1 << 20) -> Path:
    """Download the whole file at ``url`` to ``dest`` (written to a temporary name, then
    renamed).

    Parameters
    ----------
    url : str
    dest : str or path-like
        File to write; its folder must exist.
    chunk_size : int
        Bytes per read.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    RemoteFileError
        If the file cannot be fetched.
    """
    import requests

    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.part"
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT) as response:
            if response.status_code >= 400:
                raise RemoteFileError(f"the server answered {response.status_code} "
                                      f"{response.reason} for {url}; check the URL.")
            with open(tmp, "wb") as fh:
                for block in response.iter_content(chunk_size):
                    fh.write(block)
        os.replace(tmp, dest)
    except requests.RequestException as err:
        raise RemoteFileError(f"cannot download {url} ({type(err).__name__}); check the URL "
                              "and the network.") from err
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


@contextmanager
def local_copy(source, folder) -> Iterator[Path]:
    """A local path for ``source``: the path itself, or, for a URL, a downloaded temporary copy
    in ``folder`` (deleted on exit).

    Writing a fit back needs the whole source file (the new file holds its content plus the
    fit), so a URL source is downloaded once for that; the new file is always local.

    Parameters
    ----------
    source : str or path-like
        A path or an http(s) URL.
    folder : str or path-like
        Where a downloaded copy is put (the output folder, so that a rename stays on one disk).

    Yields
    ------
    pathlib.Path
    """
    if not is_url(source):
        yield Path(source)
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{uuid.uuid4().hex[:8]}.{url_name(source)}"
    try:
        yield download(source, path)
    finally:
        if path.exists():
            path.unlink()
