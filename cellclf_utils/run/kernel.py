"""The kernel a stage's notebook runs in, with its own stderr in the stage's ``kernel.log``.

The kernel's libraries write start-up lines straight to file descriptor 2 (TensorFlow's C++ log,
the kernel's TCP-encryption warning, the KeyboardInterrupt of its shutdown); inherited from
``cellclf run``, they would cut through the run's progress line. What the stage's code prints
still reaches the notebook: ipykernel captures the descriptor once it has started.
"""
from __future__ import annotations

from jupyter_client.manager import AsyncKernelManager
from traitlets import Unicode
from traitlets.config import Config


class LoggedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel process writes its stdout and stderr to ``log_path``."""

    log_path = Unicode("", help="file the kernel process's own output goes to ('' : inherited)").tag(config=True)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        if not self.log_path:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            return await super()._async_launch_kernel(kernel_cmd, **kw)


def engine_options(log_path) -> dict:
    """Return papermill's ``execute_notebook`` keyword arguments that start the kernel with its
    own output in ``log_path``."""
    return {"kernel_manager_class": LoggedKernelManager,
            "config": Config({"LoggedKernelManager": {"log_path": str(log_path)}})}
