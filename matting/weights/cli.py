"""``python -m matting.weights list|fetch|verify``: the command line of the weights package.

The library modules report through :mod:`logging` (logger ``matting.weights.*``); :func:`main` shows
those messages on stderr, as plain lines, for as long as the command runs. Tables and results are
printed to stdout.
"""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import MattingError
from ..paths import weights_dir
from .download import fetch
from .manifest import manifest
from .store import STATUS_HELP, status
from .verify import verify


class _TerminalHandler(logging.Handler):
    """One line per message on the current ``sys.stderr`` (looked up per message, so that a
    redirected or captured stderr receives them too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _command_list(_args) -> int:
    entries = list(manifest().values())
    rows = [("id", "arch", "size", "licence", "default", "status")]
    states = {e.id: status(e.id) for e in entries}
    rows += [(e.id, e.arch, e.size_text, e.license, "yes" if e.default else "", states[e.id]) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\nweights dir: {weights_dir()}")
    shown = sorted(set(states.values()))
    print("status: " + "; ".join(f"{s} = {STATUS_HELP[s]}" for s in shown))
    return 0


def _command_fetch(args) -> int:
    if args.all:
        ids = list(manifest())
    elif args.default:
        ids = [e.id for e in manifest().values() if e.default]
    else:
        ids = args.ids
    if not ids:
        print("Name checkpoint ids to fetch, or --default, or --all (python -m matting.weights list).",
              file=sys.stderr)
        return 2
    failed = 0
    for checkpoint_id in ids:
        try:
            fetched = fetch(checkpoint_id, progress=not args.quiet)
            print(f"{checkpoint_id}: {fetched}")
        except MattingError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _unknown_architectures(ids) -> list[str]:
    """A line for each of ``ids`` whose manifest ``arch`` is not a registered architecture."""
    # Imported here, and only here in the package: the models depend on the weights, not the reverse,
    # and list/fetch should not pay for importing torch and every architecture file.
    from ..models import architectures

    known = set(architectures())
    entries = manifest()
    return [f"checkpoint '{i}' names the architecture {entries[i].arch!r}, which is not registered "
            f"(known: {', '.join(sorted(known))})" for i in ids if i in entries and entries[i].arch not in known]


def _command_verify(args) -> int:
    ids = args.ids or list(manifest())
    bad = 0
    for problem in _unknown_architectures(ids):
        print(f"error: {problem}", file=sys.stderr)
        bad += 1
    for checkpoint_id in ids:
        try:
            result = verify(checkpoint_id)
        except MattingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
            continue
        if result.status == "missing" and not args.ids:
            continue
        line = f"{result.id}: {result.status}"
        if result.sha256:
            line += f"  sha256 {result.sha256}"
        if result.status == "corrupt" and result.expected:
            line += f"  expected {result.expected}"
        if result.note:
            line += f"  ({result.note})"
        print(line)
        bad += not result.ok
    return 1 if bad else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.weights",
                                     description="List, fetch and verify the checkpoints of the workbench.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="table of checkpoints and their status").set_defaults(run=_command_list)
    fetch_parser = commands.add_parser("fetch", help="download checkpoints into the weights dir")
    fetch_parser.add_argument("ids", nargs="*", help="checkpoint ids (see list)")
    fetch_parser.add_argument("--default", action="store_true", help="the checkpoints marked default")
    fetch_parser.add_argument("--all", action="store_true",
                              help="every checkpoint (before a session without network; several hundred MB)")
    fetch_parser.add_argument("--quiet", action="store_true", help="no progress output")
    fetch_parser.set_defaults(run=_command_fetch)
    verify_parser = commands.add_parser(
        "verify", help="sha256 of every present file, and each checkpoint's architecture is registered "
                       "(exit 1 on a problem)")
    verify_parser.add_argument("ids", nargs="*", help="checkpoint ids (default: all present)")
    verify_parser.set_defaults(run=_command_verify)
    args = parser.parse_args(argv)

    # Show the library's messages (INFO and up) while this command runs; undone afterwards, so that
    # calling main() from Python leaves the process's logging as it was.
    package_log = logging.getLogger("matting.weights")
    handler = _TerminalHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous_level = package_log.level
    package_log.addHandler(handler)
    if package_log.getEffectiveLevel() > logging.INFO:
        package_log.setLevel(logging.INFO)
    try:
        return args.run(args)
    except MattingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(previous_level)
