import json

import numpy as np
import pandas as pd
import pytest

from cellclf_utils.atomic import write_csv, write_json, write_npz


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float32(0.5), "n": np.int64(3), "nan": float("nan")})
    write_csv(tmp_path / "b.csv", pd.DataFrame({"a": [1, 2]}))
    write_npz(tmp_path / "c.npz", v=np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.csv", "c.npz"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 0.5, "n": 3, "nan": None}
    np.testing.assert_array_equal(np.load(tmp_path / "c.npz")["v"], np.arange(3))


def test_failed_write_keeps_the_old_file(tmp_path):
    write_json(tmp_path / "a.json", {"v": 1})
    with pytest.raises(TypeError):
        write_json(tmp_path / "a.json", {"v": object()})
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1}
    assert len(list(tmp_path.iterdir())) == 1
