"""``--config FILE`` means one thing wherever it is written.

``ephemera --config F invoke apply``, ``ephemera invoke apply --config F`` and
``ephemera deploy code-engine --config F`` all name the one config the command reads.
Two different files named in one command line are refused: the command never guesses
which one was meant (a deploy of the wrong config is a deploy to the wrong account).
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ephemera.errors import ParamError

HELP = "config file (default: $EPHEMERA_CONFIG_FILE, ./.ephemera.yaml, ~/.ephemera/config)"
SUB_DEST = "sub_config"  # where a subcommand's own --config lands, beside the top-level one


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """``--config/-c`` on a subcommand; unset unless written there (the top-level one stays)."""
    parser.add_argument("--config", "-c", dest=SUB_DEST, default=argparse.SUPPRESS, metavar="FILE", help=HELP)


def one_config(values: Sequence[Optional[str]]) -> Optional[str]:
    """The one config file the command line names, or None for the default locations."""
    named = [v for v in values if v]
    if len({str(v) for v in named}) > 1:
        raise ParamError(
            "--config",
            f"names two different files ({' and '.join(dict.fromkeys(named))})",
            "write --config once, before or after the subcommand",
        )
    return named[0] if named else None


def split_deploy(argv: Sequence[str]) -> Optional[tuple[Optional[str], list[str]]]:
    """``(top-level --config, the rest)`` when the command is ``deploy``, else None.

    ``deploy`` has its own parser (its targets have options of their own, and ``--help``);
    the top-level options before it are read here so that none is lost on the way."""
    config: Optional[str] = None
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("--config", "-c") and i + 1 < len(argv):
            config, i = argv[i + 1], i + 2
        elif token.startswith("--config="):
            config, i = token.partition("=")[2], i + 1
        elif token.startswith("-c") and len(token) > 2 and not token.startswith("--"):
            config, i = token[2:], i + 1
        else:
            break
    if i < len(argv) and argv[i] == "deploy":
        return config, list(argv[i + 1 :])
    return None
