"""The ``cellclf`` command: data synth/check, run the series, write the report, classify new
images with a trained stage and export it. One module per group of commands (``data``,
``series``, ``use``); each adds its parsers, and ``main`` prints a user's mistake as one line."""
from __future__ import annotations

import argparse
import errno
import sys
import traceback

from . import data, series, use


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    p = argparse.ArgumentParser(prog="cellclf", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"cellclf {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    data.add_parser(sub)
    series.add_parsers(sub)
    use.add_parsers(sub)
    return p


_PERMISSIONS = "check the folder's permissions (runs go to $CELLCLF_RUNS when it is set)"
_OS_HINTS = {errno.EACCES: _PERMISSIONS, errno.EPERM: _PERMISSIONS,
             errno.EROFS: "the file system is read-only: set $CELLCLF_RUNS, or pass a path on a writable disk",
             errno.ENOSPC: "the disk is full: free some space, or set $CELLCLF_RUNS to another disk"}
BUG_LINE = ("cellclf: this is a bug in cellclf, not a mistake in your input; please report it with the "
            "traceback above")


def os_error_line(e: OSError) -> str:
    """Return one line for a failed file operation: the file, the system's reason and what to do."""
    target = " → ".join(str(f) for f in (e.filename, e.filename2) if f is not None) or "a file"
    hint = _OS_HINTS.get(e.errno, "")
    return f"{target}: {e.strerror or e}" + (f"; {hint}" if hint else "")


def main(argv=None) -> int:
    import cellclf_utils  # noqa: F401  (pins KERAS_BACKEND before anything imports keras)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as e:
        # our errors say what to do; a traceback would bury that
        print(f"cellclf: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that cannot be written, a full disk: the machine's state, not a bug
        print(f"cellclf: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cellclf: interrupted (finished work is kept)", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(BUG_LINE, file=sys.stderr)
        return 3

