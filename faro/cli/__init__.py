"""The ``faro`` command line (docs/cli.md describes every command).

Commands, one module each:
  faro run       (:mod:`faro.cli.run`) watch what a configuration names until SIGINT/SIGTERM
                 or auto-shutdown (``faro --config FILE ...`` without a command, and the Go
                 original's ``-config=FILE`` single-dash flags, mean ``faro run``)
  faro validate  (:mod:`faro.cli.validate`) check a configuration and print the informers it
                 asks for (no cluster)
  faro discover  (:mod:`faro.cli.discover`) list the resources a cluster serves that faro
                 can watch
  faro sim       (:mod:`faro.cli.sim`) run the simulated Kubernetes API server until
                 interrupted; HTTPS (kubectl sends tokens only over TLS) unless --http
  faro demo      (:mod:`faro.cli.demo`) run faro against an in-process simulator, change
                 objects, show the events

Every command takes ``-h``/``--help`` and ``--version``, also written as the Go original
writes them, ``-help`` and ``-version``, with or without a command.

Exit codes: 0 success (also after a stop by a signal or by auto-shutdown), 1 runtime failure
(the cluster cannot be reached or refuses, no usable kubeconfig, the metrics port is taken,
threads left running after the stop timeout), 2 usage or configuration error (arguments, the
configuration file, a resource the cluster does not serve), 130 Ctrl-C before a command
installed its handlers. Errors are one line on stderr, ``faro: error: ...``, never a
traceback. Signal handlers are installed by the commands, never by the library
(:mod:`faro.cli._process` has the signal, exit and logging machinery).

:func:`main` also takes ``configure``: a callable given the :class:`~faro.Controller` of
``faro run`` before it starts, so a program can run the faro command with handlers of its own
(``sys.exit(faro.cli.main(configure=lambda c: c.add_event_handler(my_handler)))``).

This module only wires the commands together: the parser, the translation of the Go
original's argument forms (:func:`_with_implied_run`) and :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from faro import __version__
from faro.cli import demo, discover, run, sim, validate
from faro.cli._process import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    STOP_TIMEOUT,
)
from faro.cli.demo import DEMO_OUTPUT_DIR
from faro.cli.run import Configure

__all__ = ["DEMO_OUTPUT_DIR", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE",
           "STOP_TIMEOUT", "Configure", "main"]

_COMMANDS = ("run", "validate", "discover", "sim", "demo")

# The long flags of `faro run` that may be written Go-style, with one dash.
_GO_FLAGS = run.GO_FLAGS

# What every command accepts Go-style, as Go's flag package does: `-help`, `-version`.
_GO_EVERYWHERE = frozenset({"help", "version"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faro",
        description="Watch Kubernetes resources the way client-go informers do. "
        "'faro --config FILE [flags]' without a command is 'faro run'; the Go original's "
        "single-dash flags (-config=FILE, -output-dir DIR, -log-level L, -auto-shutdown N, "
        "-help, -version) are accepted too.",
        epilog="Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. "
        "See docs/cli.md.",
    )
    version = f"faro {__version__}"
    parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run, validate, discover, sim, demo):
        module.add_parser(commands, version)
    return parser


def _go_style(args: Sequence[str], flags: frozenset[str] = _GO_FLAGS | _GO_EVERYWHERE
              ) -> list[str]:
    """``-config=F`` → ``--config=F``, ``-log-level L`` → ``--log-level L`` (Go's flag syntax).

    Only the names in ``flags`` are translated (by default the run flags, ``-help`` and
    ``-version``), so ``-h`` and values that merely start with ``-`` stay; nothing after
    ``--`` is touched.
    """
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            out.extend(args[index:])
            break
        if arg.startswith("-") and not arg.startswith("--") and \
                arg[1:].split("=", 1)[0] in flags:
            arg = "-" + arg
        out.append(arg)
    return out


def _with_implied_run(argv: Sequence[str]) -> list[str]:
    """The arguments as argparse takes them: ``run`` inserted when they start with a flag of
    ``faro run``, the Go original's single-dash flags with two dashes (every flag of
    ``faro run``; ``-help`` and ``-version`` for every command and without one)."""
    if not argv:
        return []
    first = argv[0]
    if first == "run":
        return ["run", *_go_style(argv[1:])]
    if first in _COMMANDS:
        return [first, *_go_style(argv[1:], _GO_EVERYWHERE)]
    translated = _go_style(argv)
    if translated[0].startswith("--") and translated[0][2:].split("=", 1)[0] in _GO_FLAGS:
        return ["run", *translated]
    return _go_style(argv, _GO_EVERYWHERE)


def main(argv: Sequence[str] | None = None, *, configure: Configure | None = None) -> int:
    """Run the faro command with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    ``configure``, if given, is called with the :class:`~faro.Controller` of ``faro run``
    after it is built and before it starts: a program may add handlers and middlewares
    there and so run the faro command with code of its own. It is not used by the other
    commands.
    """
    parser = _parser()
    args, extra = parser.parse_known_args(
        _with_implied_run(sys.argv[1:] if argv is None else argv))
    command_parser: argparse.ArgumentParser | None = getattr(args, "command_parser", None)
    if extra:  # reported with the command's usage, not the top level's
        (command_parser or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "run":
            assert command_parser is not None
            return run.command(command_parser, args, configure)
        if args.command == "validate":
            return validate.command(args)
        if args.command == "discover":
            return discover.command(args)
        if args.command == "sim":
            assert command_parser is not None
            return sim.command(command_parser, args)
        if args.command == "demo":
            assert command_parser is not None
            return demo.command(command_parser, args)
    except KeyboardInterrupt:  # before a command installed its own handlers
        print("faro: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (`faro discover | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
        return EXIT_FAILURE
    parser.print_help(sys.stderr)
    return EXIT_USAGE
