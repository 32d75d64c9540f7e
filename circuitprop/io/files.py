"""Files written whole or not at all, and ``.npz`` files read without trusting them."""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import NetworkError


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (never half-written).

    A failure (a full disk, a read-only folder) raises :class:`OSError` naming ``path``; the temporary file is
    removed and a previous file at ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot write {path} ({len(data):,} bytes): {exc.strerror or exc}; the "
                                     "previous file, if any, is unchanged") from None
        raise
    return path


def atomic_savez(path, spec: dict, **arrays) -> Path:
    """Save arrays plus a JSON ``spec`` into one ``.npz`` file, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, __spec__=np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


#: Largest JSON spec accepted in a circuitprop ``.npz`` file, bytes.
MAX_SPEC_BYTES = 1 << 22
#: Room allowed for the ``.npy`` header of a member, bytes.
_NPY_HEADER_BYTES = 1 << 16


def _read_member(zf, info, path, what, shape=None, max_bytes=None):
    """Read one ``.npy`` member after checking its declared size, dtype and shape (no pickles)."""
    fmt = np.lib.format
    if max_bytes is not None and info.file_size > max_bytes + _NPY_HEADER_BYTES:
        raise NetworkError(f"{path}: member {what!r} declares {info.file_size} bytes, more than the "
                           f"{max_bytes} its spec allows; refusing to decompress it")
    try:
        with zf.open(info) as fh:
            version = fmt.read_magic(fh)
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            got_shape, _, dtype = header(fh)
        if shape is not None:
            if dtype.kind != "f" or dtype.itemsize > 8:
                raise NetworkError(f"{path}: {what!r} has dtype {dtype}, expected real floats (float64)")
            if tuple(got_shape) != tuple(shape):
                raise NetworkError(f"{path}: {what!r} has shape {tuple(got_shape)}, expected {tuple(shape)}")
        elif dtype != np.uint8 or len(got_shape) != 1:
            raise NetworkError(f"{path}: {what!r} is not a byte string")
        with zf.open(info) as fh:
            return fmt.read_array(fh, allow_pickle=False)
    except NetworkError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError, zlib.error
        raise NetworkError(f"{path}: cannot read {what!r} ({type(exc).__name__}: {exc})") from None


def load_npz_with_spec(path, expected_format: str, members=None):
    """Read an ``.npz`` written by :func:`atomic_savez`; returns ``(spec, arrays)``.

    The JSON spec is read first.  ``members(spec)`` returns ``{name: shape}`` of the float arrays
    the file must hold; any other member is refused, and every member's declared size, dtype and
    shape are checked before it is decompressed (a hostile file cannot make it allocate more than
    its spec declares).  Arrays the callable names but the file lacks are simply absent from the
    result (the caller says which are required).
    """
    path = Path(path)
    if not path.exists():
        raise NetworkError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NetworkError(f"{path}: not a circuitprop file ({type(exc).__name__}: {exc})") from None
    with zf:
        infos = {}
        for info in zf.infolist():
            if not info.filename.endswith(".npy") or "/" in info.filename:
                raise NetworkError(f"{path}: unexpected member {info.filename[:80]!r}; not a circuitprop file")
            infos[info.filename[:-4]] = info
        if "__spec__" not in infos:
            raise NetworkError(f"{path}: no '__spec__' entry; not a circuitprop file")
        raw = _read_member(zf, infos.pop("__spec__"), path, "__spec__", max_bytes=MAX_SPEC_BYTES)
        try:
            spec = json.loads(raw.tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise NetworkError(f"{path}: corrupt JSON spec: {exc}") from None
        except RecursionError:
            raise NetworkError(f"{path}: the JSON spec is nested too deep to be a circuitprop spec") from None
        if not isinstance(spec, dict):
            raise NetworkError(f"{path}: the spec is a JSON {type(spec).__name__}, expected an object")
        if spec.get("format") != expected_format:
            raise NetworkError(f"{path}: format is {spec.get('format')!r}, expected {expected_format!r}")
        if members is None:
            raise NetworkError("load_npz_with_spec needs the expected members")  # pragma: no cover
        expected = members(spec)
        unknown = sorted(set(infos) - set(expected))
        if unknown:
            shown = ", ".join(repr(u[:40]) for u in unknown[:5])
            raise NetworkError(f"{path}: unknown member(s) {shown}{' ...' if len(unknown) > 5 else ''} "
                               f"(this file's spec expects {sorted(expected)[:6]}...)")
        arrays = {}
        for name, info in infos.items():
            shape = expected[name]
            arrays[name] = _read_member(zf, info, path, name, shape=shape, max_bytes=8 * math.prod(shape))
    return spec, arrays


