"""The ``cellclf`` command: data synth/check, run the series, write the report, classify new
images with a trained stage and export it. One module per group of commands (``data``,
``series``, ``use``); each adds its parsers, and ``main`` prints a user's mistake as one line."""
from __future__ import annotations

import argparse
import sys

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


def main(argv=None) -> int:
    import cellclf_utils  # noqa: F401  (pins KERAS_BACKEND before anything imports keras)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as e:
        # our errors say what to do; a traceback would bury that
        print(f"cellclf: {e}", file=sys.stderr)
        return 2

