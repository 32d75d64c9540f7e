"""experiments/depth_curves.py: test error per epoch from run_depth.sh folders and depth_backprop.py records;
malformed inputs stop it with the file named."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from depth_curves import read_errors  # noqa: E402


def test_reads_a_run_folder_and_a_backprop_record(tmp_path):
    folder = tmp_path / "fashion-mnist_1H_s0"
    folder.mkdir()
    lines = [{"epoch": 1, "test_accuracy": 0.875}, {"batch": 10}, {"epoch": 2, "test_accuracy": 0.9}]
    (folder / "model.log.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert read_errors(folder) == pytest.approx([12.5, 10.0])
    record = tmp_path / "fashion-mnist_1H-3072_s0.json"
    record.write_text(json.dumps({"history": [{"epoch": 1, "test_accuracy": 0.8},
                                              {"epoch": 2, "test_accuracy": 0.9125}]}))
    assert read_errors(record) == pytest.approx([20.0, 8.75])


def test_malformed_inputs_are_named(tmp_path):
    with pytest.raises(SystemExit, match="model.log.jsonl does not exist"):
        read_errors(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match=r"bad.json is not a depth_backprop.py record"):
        read_errors(bad)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"history": [{"epoch": 1}]}))
    with pytest.raises(SystemExit, match="empty.json has no epoch with a test accuracy"):
        read_errors(empty)
    with pytest.raises(SystemExit, match="missing.json does not exist"):
        read_errors(tmp_path / "missing.json")
