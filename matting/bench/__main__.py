"""python -m matting.bench SUITE [options]: every module of this package with a ``main(argv)`` is a suite."""
import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from ..errors import MattingError

SUITES = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m matting.bench")
    parser.add_argument("suite", choices=SUITES)
    if argv and argv[0] in SUITES:  # the suite's own options, --help included, go to the suite
        args, rest = parser.parse_args(argv[:1]), argv[1:]
    else:
        args, rest = parser.parse_known_args(argv)
    suite_main = importlib.import_module(f"{__package__}.{args.suite}").main
    try:
        return suite_main(rest)
    except MattingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


sys.exit(main())
