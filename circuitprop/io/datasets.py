"""MNIST, Fashion-MNIST and KMNIST from their official gzipped IDX files.

Where the files are looked for, first match wins:

1. the ``data_dir`` argument (``--data-dir`` on the command line);
2. the ``CIRCUITPROP_DATA`` environment variable;
3. the per-user cache ``$XDG_CACHE_HOME/circuitprop`` (``~/.cache/circuitprop``).

Inside it, each dataset has a folder (``mnist/``, ``fashion-mnist/``, ``kmnist/``)
with the four official files.  Missing files are downloaded into the cache
when the machine is online, and every file is checked against the official
MD5 sum; otherwise the error lists the files expected and where to put them.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from .files import atomic_write_bytes

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: Official MD5 sums of the gzipped files.
MD5 = {
    "mnist": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    "fashion-mnist": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                      "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                      "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                      "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    "kmnist": {"train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
               "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
               "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
               "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134"},
}

URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "kmnist": "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
}


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or malformed (the message says which and where)."""


def default_data_dir() -> Path:
    env = os.environ.get("CIRCUITPROP_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "circuitprop"


def read_idx(path) -> np.ndarray:
    """Read a (gzipped) IDX file; raises :class:`DatasetError` naming the file on any malformation."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DatasetError(f"{path}: IDX data type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated header")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DatasetError(f"{path}: size {len(data)} bytes does not match its header dims {dims} "
                           f"({expected} bytes expected): truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _md5(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url, dest: Path, md5: str) -> None:
    with urllib.request.urlopen(url, timeout=20) as resp:  # noqa: S310 - fixed official https/http URLs
        data = resp.read()
    if hashlib.md5(data).hexdigest() != md5:
        raise DatasetError(f"{url}: downloaded file fails its MD5 check")
    atomic_write_bytes(dest, data)


def locate(name: str, data_dir=None, download=True, verify=True, splits=("train", "test")) -> dict:
    """Paths of the files of dataset ``name`` for ``splits``, downloading missing ones when possible."""
    if name not in MD5:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(MD5)}")
    roots = [Path(data_dir)] if data_dir else [default_data_dir()]
    folder = roots[0] / name
    paths, missing = {}, []
    for key, fname in FILES.items():
        if key.split("_")[0] not in splits:
            continue
        path = folder / fname
        if not path.exists() and download and name in URLS:
            try:
                _download(URLS[name] + fname, path, MD5[name][fname])
            except (OSError, DatasetError):
                pass
        if not path.exists():
            missing.append(fname)
            continue
        if verify and _md5(path) != MD5[name][fname]:
            raise DatasetError(f"{path}: MD5 {_md5(path)} differs from the official {MD5[name][fname]}; "
                               "the file is corrupt or not the official one")
        paths[key] = path
    if missing:
        raise DatasetError(
            f"dataset {name!r}: missing {', '.join(missing)} in {folder} (and they could not be downloaded). "
            f"Put the official gzipped IDX files there, or point --data-dir / CIRCUITPROP_DATA at a folder "
            f"holding {name}/<files>.")
    return paths


def downsample(images: np.ndarray, size: int) -> np.ndarray:
    """Average-pool square images (n, 28, 28) to (n, size, size); ``size`` must divide 28."""
    n, h, w = images.shape
    if h % size or w % size:
        raise DatasetError(f"cannot downsample {h}x{w} images to {size}x{size}: {size} must divide {h}")
    f = h // size
    return images.reshape(n, size, f, size, f).mean(axis=(2, 4))


def load_split(name="mnist", split="test", data_dir=None, size=28, download=True, verify=True, limit=None):
    """Load one split (``"train"`` or ``"test"``) as float64 features in [0, 1] and int64 labels.

    Only that split's two files are needed (e.g. ``eval`` on a dataset whose training files are absent).
    """
    if split not in ("train", "test"):
        raise DatasetError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DatasetError(f"image size must be a positive integer, got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DatasetError(f"limit must be a positive integer (number of images), got {limit!r}")
    paths = locate(name, data_dir, download, verify, splits=(split,))
    images = read_idx(paths[f"{split}_images"])
    labels = read_idx(paths[f"{split}_labels"])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{paths[f'{split}_images']}: {images.shape} images do not match "
                           f"{labels.shape} labels")
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = images.astype(np.float64) / 255.0
    if size != images.shape[1]:
        x = downsample(x, size)
    return x.reshape(x.shape[0], -1), labels.astype(np.int64)


def load_dataset(name="mnist", data_dir=None, size=28, download=True, verify=True, limit_train=None,
                 limit_test=None):
    """Load a dataset as float64 features in [0, 1].

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Images flattened to ``size*size`` features; labels as int64.
    """
    train = load_split(name, "train", data_dir, size, download, verify, limit_train)
    test = load_split(name, "test", data_dir, size, download, verify, limit_test)
    return train + test


def write_idx(path, array) -> Path:
    """Write ``array`` as a gzipped IDX file of unsigned bytes (the official MNIST format)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    with gzip.open(path, "wb") as fh:
        fh.write(header + np.asarray(array).astype(np.uint8).tobytes())
    return path


def write_two_class_mnist(root, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A small generated dataset in the official MNIST layout under ``root/mnist`` (two separable classes among
    ten labels: the top or the bottom half of the image lit), for tests and demonstrations without the real
    files. Its MD5 sums are not the official ones: load it with ``verify=False``."""
    folder = Path(root) / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 2, n)
        images = np.zeros((n, 28, 28))
        images[labels == 0, :14] = 255
        images[labels == 1, 14:] = 255
        images = np.clip(images + rng.integers(0, 60, images.shape), 0, 255)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return Path(root)

