"""Executed notebooks lose the libraries' start-up lines and keep everything else; progress bars
keep their final state."""
import nbformat as nbf

from cellclf_utils.report import notebook_noise as noise

# lines copied from the stage pages of a `make run` (TensorFlow 2.x on a CPU box) and a JAX kernel
STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796189282.569918    2811 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796189282.571306    2811 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "E0000 00:00:1796189289.876945    2811 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "[IPKernelApp] WARNING | Kernel is running over TCP without encryption. Messages are not authenticated and may "
    "be susceptible to eavesdropping.",
    "WARNING:jax._src.xla_bridge:An NVIDIA GPU may be present on this machine, but a CUDA-enabled jaxlib is not "
    "installed. Falling back to cpu.",
]
REAL = ["/work/x.py:3: UserWarning: the stage's own warning", "ValueError: a real error line"]


def test_startup_lines_are_noise_and_a_stages_own_warnings_are_not():
    assert all(noise.is_noise(line) for line in STARTUP)
    assert not any(noise.is_noise(line) for line in REAL)


def test_a_progress_bar_keeps_its_final_state_and_an_erased_one_goes():
    bar = "\rfeatures:   0%|          | 0/8\rfeatures:  50%|#####     | 4/8\rfeatures: 100%|##########| 8/8\n"
    assert noise.terminal_text(bar) == "features: 100%|##########| 8/8\n"
    assert noise.terminal_text("\rimages:  40%\r" + " " * 20 + "\r").strip() == ""
    assert noise.terminal_text("plain line\nnext\n") == "plain line\nnext\n"


def test_clean_drops_noise_merges_streams_and_keeps_the_rest():
    nb = nbf.v4.new_notebook()
    cell = nbf.v4.new_code_cell("import keras")
    cell.outputs = [nbf.v4.new_output("stream", name="stderr", text="\n".join(STARTUP[:3]) + "\n"),
                    nbf.v4.new_output("stream", name="stdout", text="90 training images\n"),
                    nbf.v4.new_output("stream", name="stderr", text=STARTUP[3] + "\n"),
                    nbf.v4.new_output("stream", name="stderr", text="\rbar: 0%\rbar: 100%\n"),
                    nbf.v4.new_output("stream", name="stderr", text=REAL[0] + "\n")]
    quiet = nbf.v4.new_code_cell("x = 1")
    quiet.outputs = [nbf.v4.new_output("stream", name="stderr", text=STARTUP[0] + "\n")]
    nb.cells = [cell, quiet]
    out = noise.clean(nb)
    assert [(o.name, o.text) for o in out.cells[0].outputs] == [
        ("stdout", "90 training images\n"), ("stderr", f"bar: 100%\n{REAL[0]}\n")]
    assert out.cells[1].outputs == []  # a cell whose only output was noise shows no box
    assert len(nb.cells[0].outputs) == 5  # the notebook given is left as it was
