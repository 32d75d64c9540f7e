"""Declaring a setting once: its type, unit, default, valid range, choices and help text.

A configuration dataclass declares each field with :func:`setting`::

    @dataclass
    class EPConfig:
        beta: float = setting(1e-6, "nudging strength", unit="S", low=0, low_open=True)

Everything else is derived from that one declaration: validation (:func:`validate`, called by each config's
``__post_init__``), conversion to and from plain dicts for checkpoints and model files (:func:`to_dict`,
:func:`from_dict`), and the command-line options with their ``--help`` text (:mod:`circuitprop.cli.options`).
Model classes (e.g. :class:`circuitprop.model.DiodeModel`) declare their fields the same way, so a range holds
wherever the value comes from: the command line, Python, a checkpoint, a sweep spec or a model file.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: Placeholder for "no default" in :func:`setting`.
REQUIRED = dataclasses.MISSING


from .errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """What is declared about one field (kept in the field's ``metadata["setting"]``).

    Parameters
    ----------
    help : str
        One line for ``--help`` and the docs.
    unit : str
        Unit of the value (``"V"``, ``"A"``, ``"S"``, ``"ohm"``, ``""`` for none).
    kind : type
        ``float``, ``int``, ``str`` or ``bool``: the type of the value (of each element when ``count`` is set).
    low, high : float or None
        Bounds of a number; ``low_open``/``high_open`` exclude the bound itself.
    choices : tuple or None
        The allowed values of a text setting.
    optional : bool
        ``None`` is allowed (meaning given in ``help``).
    count : None, int or "+"
        ``None``: one value; an int: a tuple of exactly that many; ``"+"``: one value or a list of them.
    flag : str or None
        Command-line option (default: ``--`` plus the field name with ``-`` for ``_``).
    aliases : tuple of str
        Older option names that still work (deprecated).
    check : callable or None
        Extra check ``check(value)`` that raises ``ValueError`` with the reason (e.g. a layer spec's syntax).
    normalize : callable or None
        Maps an accepted value to its canonical form (e.g. ``"ideal"`` device -> ``None``), after the checks.
    metavar : str or None
        Placeholder of the value in ``--help``.
    cli : bool
        Whether the setting is offered on the command line.
    """

    help: str
    unit: str = ""
    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    optional: bool = False
    count: int | str | None = None
    flag: str | None = None
    aliases: tuple = ()
    check: Callable | None = None
    normalize: Callable | None = None
    metavar: str | None = None
    cli: bool = True

    # -- the range in words (for errors and --help) --------------------------------------------------------
    def range_text(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "text"
        if self.kind is object:
            return "valid"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_number(self.high)}")
        what = "an integer" if self.kind is int else "a finite number"
        return what + (" " + " and ".join(parts) if parts else "")

    def describe(self) -> str:
        """``help (unit; range)`` for ``--help``."""
        extra = [self.unit] if self.unit else []
        if self.kind in (int, float) and (self.low is not None or self.high is not None):
            extra.append(self.range_text().replace("a finite number ", "").replace("an integer ", "integer "))
        return self.help + (f" [{'; '.join(extra)}]" if extra else "")

    # -- checking one value ------------------------------------------------------------------------------
    def _scalar(self, name: str, value):
        if self.kind is object:  # a structured value: ``check`` and ``normalize`` say what is accepted
            return value
        if self.kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigError(f"{name} must be true or false, got {value!r:.80}")
            return bool(value)
        if self.kind is str:
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be {self.range_text()}, got {value!r:.80}")
            if self.choices is not None and value not in self.choices:
                raise ConfigError(f"{name} must be {self.range_text()}, got {value!r:.80}")
            return value
        numeric = (int, np.integer) if self.kind is int else (int, float, np.integer, np.floating)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numeric):
            if self.kind is int and isinstance(value, (float, np.floating)) and float(value).is_integer() \
                    and abs(value) < 2**53:
                value = int(value)  # 1e3 in a TOML or JSON file means 1000
            else:
                raise ConfigError(f"{name} must be {self.range_text()}{_unit(self.unit)}, got {value!r:.80}")
        value = self.kind(value)
        bad = isinstance(value, float) and not math.isfinite(value)
        if self.low is not None:
            bad = bad or value < self.low or (self.low_open and value == self.low)
        if self.high is not None:
            bad = bad or value > self.high or (self.high_open and value == self.high)
        if bad:
            raise ConfigError(f"{name} must be {self.range_text()}{_unit(self.unit)}, got {value!r:.80}")
        return value

    def validate(self, name: str, value):
        """The canonical form of ``value`` for setting ``name``; :class:`ConfigError` naming it when invalid."""
        if value is None:
            if self.optional:
                return None
            raise ConfigError(f"{name} must be {self.range_text()}{_unit(self.unit)}, got None")
        if self.count is None:
            value = self._scalar(name, value)
        elif self.count == "+":
            if isinstance(value, (list, tuple, np.ndarray)):
                if len(value) == 0:
                    raise ConfigError(f"{name}: give at least one value")
                value = [self._scalar(f"{name}[{i}]", v) for i, v in enumerate(value)]
                value = value[0] if len(value) == 1 else value
            else:
                value = self._scalar(name, value)
        else:
            if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != self.count:
                raise ConfigError(f"{name} must be {self.count} values, got {value!r:.80}")
            value = tuple(self._scalar(f"{name}[{i}]", v) for i, v in enumerate(value))
        if self.check is not None:
            try:
                self.check(value)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{name}: {exc}") from None
        return self.normalize(value) if self.normalize is not None else value


def _number(value) -> str:
    return str(value) if isinstance(value, int) and abs(value) < 10**7 else f"{value:g}"


def _unit(unit: str) -> str:
    return f" ({unit})" if unit else ""


def setting(default=REQUIRED, help: str = "", *, default_factory=REQUIRED, **declared) -> Any:
    """A dataclass field declared once: ``default`` plus what :class:`Setting` holds (``help``, ``unit``, ...)."""
    meta = {"setting": Setting(help=help, **declared)}
    if default_factory is not REQUIRED:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def declared(cls_or_obj) -> dict:
    """``{field name: (dataclasses.Field, Setting)}`` of the declared fields of a config class or object."""
    return {f.name: (f, f.metadata["setting"]) for f in dataclasses.fields(cls_or_obj) if "setting" in f.metadata}


def default_of(field: dataclasses.Field):
    """The default value of a dataclass field (calling its factory)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return REQUIRED


def validate(obj, prefix: str | None = None, error: type = ConfigError) -> None:
    """Check every declared field of ``obj`` in place (its canonical form is written back).

    Error messages name the field as ``prefix.field`` (``prefix`` defaults to the class name), its unit and
    its range; they are raised as ``error`` (a model class raises its own error type).  Frozen dataclasses
    are supported.
    """
    owner = prefix if prefix is not None else type(obj).__name__
    for name, (_, spec) in declared(obj).items():
        try:
            value = spec.validate(f"{owner}.{name}" if owner else name, getattr(obj, name))
        except ConfigError as exc:
            if error is ConfigError:
                raise
            raise error(str(exc)) from None
        object.__setattr__(obj, name, value)


def inherit(cls, name: str, **changes) -> Any:
    """A field that takes the declaration (default, unit, range, help) of ``cls``'s field ``name``, with
    ``changes`` to how it is offered (e.g. ``flag="--diode-is"``): one declaration, used in two places."""
    field, spec = declared(cls)[name]
    spec = dataclasses.replace(spec, **changes)
    if field.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=field.default_factory, metadata={"setting": spec})
    return dataclasses.field(default=field.default, metadata={"setting": spec})


def plain(value):
    """A JSON-able copy of a setting's value (tuples become lists; objects with ``to_dict`` their dict)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_dict(obj) -> dict:
    """``{field: value}`` of a config, JSON-able."""
    return {name: plain(getattr(obj, name)) for name in declared(obj)}


def from_dict(cls, values: dict, where: str = "", legacy: dict | None = None):
    """A ``cls`` from ``values`` (a dict read from a file): unknown keys are refused, missing keys take
    ``legacy[key]`` when given (the value files written before the key existed were made with) or else the
    declared default; every value is checked.  ``where`` (a file name) prefixes error messages."""
    fields = declared(cls)
    if not isinstance(values, dict):
        raise ConfigError(f"{where}{': ' if where else ''}{cls.__name__} must be an object, got {values!r:.80}")
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}{': ' if where else ''}unknown {cls.__name__} settings {unknown}")
    kwargs = {}
    for name in fields:
        if name in values:
            kwargs[name] = values[name]
        elif legacy and name in legacy:
            kwargs[name] = legacy[name]
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}{': ' if where else ''}{exc}") from None
