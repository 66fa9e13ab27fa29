"""Typed configs: dataclasses, named presets, ``key=value`` overrides, and saving the resolved config with a run.

Every command and notebook builds its config the same way: ``make_config(Cls, preset, overrides)`` starts from the
dataclass defaults, applies the preset's values, then the overrides (``"a.b=3"`` strings from the CLI, or a dict
from papermill parameters). Values are parsed as YAML and checked against the field's type.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from aslkit import constants as C

T = TypeVar("T")
PROFILES = ("ci", "quick", "full")


class ConfigError(KeyError, ValueError):
    """An unknown config key or preset; the message names it and what is known."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigTypeError(TypeError, ValueError):
    """A config value of the wrong type; the message names the key, the type it needs and the value given."""


def default_profile() -> str:
    """The run profile: ``$ASLKIT_PROFILE`` when set (``ci`` under CI), else ``quick``."""
    env = os.environ.get("ASLKIT_PROFILE")
    if env:
        if env not in PROFILES:
            raise ValueError(f"ASLKIT_PROFILE={env!r}; expected one of {PROFILES}")
        return env
    return "quick"


@dataclass
class DataConfig:
    """Which competition, where its data is (empty: resolve automatically), and the synthetic fallback."""

    task: str = C.SLUG_SIGNS
    data_dir: str = ""
    synth_size: str = "quick"
    seed: int = 0


@dataclass
class SynthConfig:
    """``aslkit synth``: what to generate and where."""

    task: str = C.SLUG_SIGNS
    out: str = ""
    size: str = "quick"
    seed: int = 0
    workers: int = 0          # 0: all cores
    overwrite: bool = False


@dataclass(frozen=True)
class SynthSize:
    """How much data one ``aslkit synth`` size writes."""

    islr_participants: int
    islr_signs: int                  # glosses used (spread over the 250; the label map always has all 250)
    islr_per_sign: int               # recordings per gloss and participant
    fs_participants: int
    fs_train_files: int
    fs_supp_files: int
    fs_per_file: int


SYNTH_SIZES: dict[str, SynthSize] = {
    "ci": SynthSize(4, 25, 2, 8, 2, 1, 24),
    "quick": SynthSize(8, 250, 2, 24, 4, 1, 150),
    "full": SynthSize(21, 250, 18, 94, 68, 53, 1000),
    "scale": SynthSize(21, 250, 4, 94, 20, 1, 1000),      # benchmarks/scale_run.py: 21,000 files; 21 files of 1,000
}


PRESETS: dict[type, dict[str, dict[str, Any]]] = {
    DataConfig: {p: {"synth_size": p} for p in PROFILES},
    SynthConfig: {p: {"size": p} for p in PROFILES},
}


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` converted to type ``tp`` (YAML-parsed when a string); TypeError naming the key otherwise."""
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigTypeError(f"{name}: expected a mapping for {tp.__name__}, got {value!r}")
        return make_config(tp, overrides=dict(value))
    origin = typing.get_origin(tp)
    if isinstance(value, str) and tp is not str:
        value = yaml.safe_load(value)
    if tp is Any:
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigTypeError(f"{name}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (list, tuple, Sequence):
        args = typing.get_args(tp) or (Any,)
        items = [_coerce(v, args[0], name) for v in (value if isinstance(value, (list, tuple)) else [value])]
        return tuple(items) if origin is tuple else items
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], name)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigTypeError(f"{name}: expected true/false, got {value!r}")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _is_float(value):
        return float(value)                    # "2e-3": YAML 1.1 reads an exponent without a dot as a string
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str:
        return str(value)
    raise ConfigTypeError(f"{name}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _is_float(text: str) -> bool:
    """True when ``float(text)`` reads ``text`` as a finite number."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_overrides(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` (or a mapping) as a flat ``{"a": "1", "b.c": "x"}``."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        out[key.strip()] = value
    return out


def apply_overrides(cfg: T, overrides: Sequence[str] | Mapping[str, Any] | None, prefix: str = "") -> T:
    """A copy of ``cfg`` with dotted ``key=value`` overrides applied (ConfigError for an unknown key); messages name
    the whole dotted key (``prefix``: where ``cfg`` sits in its parent config)."""
    cfg = dataclasses.replace(cfg)
    for key, value in parse_overrides(overrides).items():
        head, _, rest = key.partition(".")
        types = _field_types(type(cfg))
        if head not in types:
            raise ConfigError(f"unknown config key {prefix + key!r} for {type(cfg).__name__}; known: "
                              f"{sorted(types)}")
        current = getattr(cfg, head)
        if rest and isinstance(current, dict):     # free-form sub-config (checked by whoever builds from it)
            setattr(cfg, head, _set_nested(current, rest, value))
        elif rest:
            setattr(cfg, head, apply_overrides(current, {rest: value}, prefix=f"{prefix}{head}."))
        else:
            setattr(cfg, head, _coerce(value, types[head], prefix + key))
    return cfg


def _set_nested(d: dict, dotted: str, value: Any) -> dict:
    """Copy of ``d`` with ``dotted`` (a.b.c) set to ``value`` (YAML-parsed when a string)."""
    out = dict(d)
    head, _, rest = dotted.partition(".")
    if rest:
        out[head] = _set_nested(out.get(head, {}) or {}, rest, value)
    else:
        out[head] = yaml.safe_load(value) if isinstance(value, str) else value
    return out


def make_config(cls: type[T], preset: str | None = None, overrides: Sequence[str] | Mapping[str, Any] | None = None
                ) -> T:
    """Defaults of ``cls``, then the named preset, then the overrides."""
    cfg = cls()
    if preset:
        presets = PRESETS.get(cls, {})
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r} for {cls.__name__}; known: {sorted(presets)}")
        cfg = apply_overrides(cfg, presets[preset])
    return apply_overrides(cfg, overrides)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples as lists), ready for YAML/JSON."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (``.yaml``/``.yml``) or JSON (anything else) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"_class": type(cfg).__name__, **to_dict(cfg)}
    text = yaml.safe_dump(data, sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(data, indent=1)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config written by ``save_config`` back into ``cls``."""
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a config mapping")
    data.pop("_class", None)
    return make_config(cls, overrides=data)
