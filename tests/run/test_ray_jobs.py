"""How the Ray executor's task watches its job process: the process dies with the worker that
started it, and a failed job's message is the one its process printed."""
import subprocess
import sys
import time
from pathlib import Path

from cellclf_utils.run import job, ray_executor

PARENT = """
import subprocess, sys, time
from cellclf_utils.run.ray_executor import _die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=_die_with_parent)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()  # a zombie has ended, only not yet reaped
    except FileNotFoundError:
        return False


def test_a_job_process_dies_with_the_worker_that_started_it():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()  # as a worker killed mid-fold
    parent.wait()
    end = time.time() + 10
    while _alive(child) and time.time() < end:
        time.sleep(0.1)
    assert not _alive(child)


def test_a_failed_jobs_message_is_what_its_process_said_else_how_it_ended(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("Epoch 1/2\nTraceback ...\n" + job.FAILED + "stage 04_vgg16 failed: ValueError: bad\n"
                   "  its log: x\n  fix the cause, then continue with: cellclf run --run-id r --resume\n")
    assert ray_executor._failure(log, 1, "04_vgg16/fold1").startswith("stage 04_vgg16 failed: ValueError: bad\n")
    log.write_text("Epoch 1/2\n")
    said = ray_executor._failure(log, -9, "04_vgg16/fold1")
    assert said == f"job 04_vgg16/fold1 was killed by signal 9 (out of memory?); its log: {log}"
