"""The command-line reference, generated from circuitprop's own argument parser (never written by hand)."""
from __future__ import annotations

import argparse
from pathlib import Path

from circuitprop.cli import build_parser


def write_cli_reference(path: Path) -> Path:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["# Command-line reference", "",
             "Generated from `circuitprop.cli.build_parser()` when the documentation is built: every option with "
             "its unit, range and default, as `circuitprop COMMAND --help` prints it.", "",
             "```text", parser.format_help().rstrip(), "```", ""]
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, command in sub.choices.items():
        lines += [f"## circuitprop {name}", "", helps.get(name, ""), "", "```text", command.format_help().rstrip(),
                  "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
