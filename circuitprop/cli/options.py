"""Command-line options derived from the setting declarations (:mod:`circuitprop.config`).

Each declared field becomes one option: ``--field-name`` (or its declared ``flag``), with the declared
default, a type that refuses values out of the declared range at parse time (exit status 2, naming the
option), the declared choices, and ``--help`` text with the unit and range.  Older option names stay as
aliases.  ``init`` and ``train`` thus share one default and one range per setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import textwrap

from ..config import declaration, parse_pair
from ..declare import Setting, declared, default_of
from ..errors import ConfigError


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default shown once (not for options whose help already says what the
    default is, nor for flags and options without a default), and descriptions and examples kept as written
    (:func:`paragraph` wraps a description)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS))
                or isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction, argparse._HelpAction))):
            return text
        return text + " (default: %(default)s)"


def paragraph(text: str) -> str:
    """A description wrapped for ``--help``."""
    return textwrap.fill(" ".join(text.split()), 96)


def examples(*lines: str) -> str:
    """An ``--help`` epilog of example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def flag_of(name: str, spec: Setting) -> str:
    return spec.flag or "--" + name.replace("_", "-")


def value_type(name: str, spec: Setting):
    """An argparse ``type``: text -> one value of the setting, checked against its declaration."""
    scalar = dataclasses.replace(spec, count=None, check=None, normalize=None, optional=False)
    flag = flag_of(name, spec)

    def parse(text):
        if spec.kind is int:
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        elif spec.kind is float:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        else:
            value = text
        try:
            return scalar.validate(flag, value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace(f"{flag} must be", "must be")) from None

    parse.__name__ = {int: "integer", float: "number"}.get(spec.kind, "value")
    return parse


def add_setting(parser, name: str, *, default=dataclasses.MISSING, help: str | None = None, aliases=True):
    """Add the option of setting ``name`` to ``parser`` (``default``/``help`` override the declared ones)."""
    cls_field, spec = declaration(name)
    flags = [flag_of(name, spec)] + (list(spec.aliases) if aliases else [])
    kwargs = {"dest": name, "default": default_of(cls_field) if default is dataclasses.MISSING else default,
              "help": help or spec.describe()}
    if spec.metavar is not None:
        kwargs["metavar"] = spec.metavar
    if spec.kind is bool:
        parser.add_argument(flags[0], action=argparse.BooleanOptionalAction, **kwargs)
        return
    if name in ("skip", "drop"):
        parser.add_argument(*flags, action="append", type=_pair, **{**kwargs, "default": None})
        return
    if name == "device":
        parser.add_argument(*flags, choices=spec.choices, **kwargs)
        return
    if spec.choices is not None:
        kwargs["choices"] = spec.choices
    elif spec.kind in (int, float):
        kwargs["type"] = value_type(name, spec)
    if spec.count == "+":
        kwargs["nargs"] = "+"
    elif isinstance(spec.count, int):
        kwargs["nargs"] = spec.count
    parser.add_argument(*flags, **kwargs)


def add_off_alias(parser, name: str, flag: str, help: str = argparse.SUPPRESS):
    """An older option that turns the true/false setting ``name`` off (e.g. ``--single-inputs``)."""
    parser.add_argument(flag, dest=name, action="store_false", help=help)


def add_group(parser, cls, title: str, exclude=()):
    """Every command-line setting of config class ``cls`` as an argument group of ``parser``."""
    group = parser.add_argument_group(title, (cls.__doc__ or "").strip().splitlines()[0])
    for name, (_, spec) in declared(cls).items():
        if spec.cli and name not in exclude:
            add_setting(group, name)
    return group


def collect(args, names) -> dict:
    """``{setting: value}`` of the parsed ``args`` for the setting ``names`` that parsing set."""
    out = {}
    for name in names:
        if hasattr(args, name):
            value = getattr(args, name)
            if name in ("skip", "drop"):
                value = tuple(value or ())
            out[name] = value
    return out


def _pair(text):
    try:
        return parse_pair(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
