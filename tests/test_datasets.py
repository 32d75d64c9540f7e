"""Dataset reading on small generated IDX files (the real files are not needed)."""
import gzip
import hashlib

import numpy as np
import pytest
from conftest import write_idx

from circuitprop.io import datasets
from circuitprop.io.datasets import DatasetError, downsample, load_dataset, read_idx


@pytest.fixture
def fake_kmnist(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "kmnist"
    folder.mkdir()
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28)),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 20),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (8, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 8)}
    sums = {}
    for name, arr in arrays.items():
        write_idx(folder / name, arr)
        sums[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.MD5, "kmnist", sums)
    return tmp_path, arrays


def test_load_generated_kmnist(fake_kmnist):
    root, arrays = fake_kmnist
    X, y, Xt, yt = load_dataset("kmnist", data_dir=root, download=False)
    assert X.shape == (20, 784) and Xt.shape == (8, 784)
    np.testing.assert_allclose(X[3], arrays["train-images-idx3-ubyte.gz"][3].ravel() / 255.0)
    np.testing.assert_array_equal(yt, arrays["t10k-labels-idx1-ubyte.gz"])
    X14, *_ = load_dataset("kmnist", data_dir=root, download=False, size=14)
    assert X14.shape == (20, 196)


def test_environment_variable_sets_the_data_dir(fake_kmnist, monkeypatch):
    root, _ = fake_kmnist
    monkeypatch.setenv("CIRCUITPROP_DATA", str(root))
    X, *_ = load_dataset("kmnist", download=False)
    assert X.shape[0] == 20


def test_missing_files_error_lists_them(tmp_path):
    with pytest.raises(DatasetError, match=r"missing train-images-idx3-ubyte.gz, .*Put the official"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_checksum_mismatch_is_reported(fake_kmnist, monkeypatch):
    root, _ = fake_kmnist
    monkeypatch.setitem(datasets.MD5["kmnist"], "train-labels-idx1-ubyte.gz", "0" * 32)
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz: MD5"):
        load_dataset("kmnist", data_dir=root, download=False)


def test_malformed_idx_files(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
                 + b"\x00" * 100)
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_idx(bad)
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"hello")
    with pytest.raises(DatasetError, match="junk.gz"):
        read_idx(junk)


def test_downsample_averages_blocks():
    img = np.arange(16, dtype=float).reshape(1, 4, 4)
    np.testing.assert_allclose(downsample(img, 2), [[[2.5, 4.5], [10.5, 12.5]]])
    with pytest.raises(DatasetError, match="must divide"):
        downsample(np.zeros((1, 28, 28)), 5)
