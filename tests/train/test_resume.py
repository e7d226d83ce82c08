"""Fold-level resume reads a finished fold back, and a fold whose files were cut names the file
and what to do instead of failing somewhere inside numpy or json."""
import json

import numpy as np
import pytest

from cellclf_utils.runfolder import RunFolderError, layout
from cellclf_utils.train import resume


@pytest.fixture
def fold(tmp_path):
    d = tmp_path / layout.fold_dir(0)
    d.mkdir()
    np.savez(d / layout.FOLD_PREDS, val_idx=np.arange(2), val=np.eye(2), val_plain=np.eye(2))
    (d / layout.FOLD_HISTORY).write_text("epoch,loss\n0,0.5\n")
    (d / layout.FOLD_DONE).write_text(json.dumps({"fold": 0, "signature": "abc"}))
    return d


def test_a_finished_fold_is_read_back_not_retrained(fold):
    got = resume.load_finished(fold, "abc")
    assert got.record["resumed"] and np.array_equal(got.val_proba, np.eye(2)) and got.test_proba is None


@pytest.mark.parametrize("name, cut", [(layout.FOLD_DONE, b'{"fold": 0, "sig'), (layout.FOLD_DONE, b""),
                                       (layout.FOLD_PREDS, None)])
def test_a_cut_fold_file_on_resume_is_named_with_what_to_do(fold, name, cut):
    path = fold / name
    path.write_bytes(path.read_bytes()[:30] if cut is None else cut)
    with pytest.raises(RunFolderError, match=rf"fold0/{name} is unreadable .*delete the damaged file and continue with --resume"):
        resume.load_finished(fold, "abc")
