"""XLA's persistent compilation cache under the JAX backend, and a count of compile time.

A fine-tuning stage compiles the same train and predict steps for every fold and phase
(20-70 s each for a big backbone on a GPU). With the cache on, only the first fold pays:
later folds, and later runs on the same machine, load the compiled program from disk.
"""
from __future__ import annotations

import os
from pathlib import Path

import keras

# JAX times a program loaded from the persistent cache as a compile too (the load happens
# inside its compile event), so the loads and their seconds are kept apart and taken off
_events = {"compiled": 0, "compiled_s": 0.0, "cache_hits": 0, "cache_load_s": 0.0}
_listening = False
_folder: Path | None = None


def default_dir() -> Path:
    """Return CELLCLF_COMPILE_CACHE if set, else ~/.cache/cellclf/xla."""
    return Path(os.environ.get("CELLCLF_COMPILE_CACHE") or Path.home() / ".cache" / "cellclf" / "xla")


def enable(path: str | Path | None = None, min_compile_s: float = 1.0) -> Path | None:
    """Turn JAX's persistent compilation cache on (programs that took ``min_compile_s`` or
    more to compile are kept); return its folder, or None when the backend is not JAX or
    CELLCLF_COMPILE_CACHE is 'off'. Once on, a call without ``path`` keeps the folder."""
    global _folder
    if keras.backend.backend() != "jax" or os.environ.get("CELLCLF_COMPILE_CACHE") == "off":
        return None
    if _folder is not None and path is None:
        return _folder
    import jax
    _folder = Path(path) if path else default_dir()
    _folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(_folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_s)
    _listen()
    return _folder


def _listen() -> None:
    global _listening
    if _listening:
        return
    from jax import monitoring

    def on_duration(event: str, seconds: float, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            _events["compiled"] += 1
            _events["compiled_s"] += seconds
        elif event == "/jax/compilation_cache/cache_retrieval_time_sec":
            _events["cache_load_s"] += seconds

    def on_event(event: str, **_):
        if event == "/jax/compilation_cache/cache_hits":
            _events["cache_hits"] += 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    _listening = True


def stats() -> dict:
    """Return the XLA programs compiled since ``enable`` (``compiles``, ``compile_s``) and those
    loaded from the persistent cache instead (``cache_hits``); all zero on a backend other
    than JAX."""
    return {"compiles": _events["compiled"] - _events["cache_hits"],
            "compile_s": max(_events["compiled_s"] - _events["cache_load_s"], 0.0),
            "cache_hits": _events["cache_hits"]}
