"""One writer per run: a second process is refused naming the holder, a lock left by a killed
process is taken over with a note, and the kernels of the `cellclf run` holding it may write."""
import os
import subprocess
import sys

import pytest

from cellclf_utils.runfolder import RunLockedError, layout, lock

HOLD = ("import sys, time\nfrom cellclf_utils.runfolder import lock\n"
        "held = lock.acquire(sys.argv[1], 'test holder')\nprint('held', flush=True)\n")


def _holder(run_dir, then: str):
    p = subprocess.Popen([sys.executable, "-c", HOLD + then, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "r1"
    p = _holder(run_dir, "time.sleep(60)")
    try:
        with pytest.raises(RunLockedError, match=rf"run r1 is being written by pid {p.pid} on .* \(started .*: "
                                                 r"test holder\); wait for it to finish \(or pass --wait\)"):
            lock.acquire(run_dir, "second")
    finally:
        p.kill()
        p.wait()


def test_the_lock_of_a_killed_writer_is_taken_over_with_a_note(tmp_path, capsys):
    run_dir = tmp_path / "r1"
    p = _holder(run_dir, "import os\nos._exit(9)")  # dies holding it: no release, .lock.json stays
    p.wait()
    assert lock.holder(run_dir)["pid"] == p.pid
    held = lock.acquire(run_dir, "after")
    assert f"was held by pid {p.pid}" in capsys.readouterr().out and lock.holder(run_dir)["pid"] == os.getpid()
    held.release()
    assert not (run_dir / layout.RUN_LOCK_INFO).exists()


def test_one_process_may_hold_a_run_twice_and_its_kernels_write_under_it(tmp_path, monkeypatch):
    run_dir = tmp_path / "r1"
    first, second = lock.acquire(run_dir, "a"), lock.acquire(run_dir, "b")  # two stages opened in one process
    second.release()
    assert lock.holder(run_dir)["pid"] == os.getpid()  # still held by the first
    assert not lock.held_by_parent(run_dir)
    monkeypatch.setenv(lock.HOLDER_ENV, str(os.getpid()))
    assert lock.held_by_parent(run_dir)
    first.release()
    assert lock.holder(run_dir) is None
