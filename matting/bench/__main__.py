import argparse
import sys

from ..errors import MattingError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench")
    parser.add_argument("suite", choices=("classical", "models", "batch"))
    args, rest = parser.parse_known_args(argv)
    if args.suite == "classical":
        from .classical import main as suite_main
    elif args.suite == "batch":
        from .batch import main as suite_main
    else:
        from .models import main as suite_main
    try:
        return suite_main(rest)
    except MattingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


sys.exit(main())
