"""Typed configs: presets, key=value overrides (CLI strings and papermill dicts), saving and loading."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from aslkit import config as cfgmod
from aslkit.config import (
    DataConfig,
    SynthConfig,
    apply_overrides,
    load_config,
    make_config,
    parse_overrides,
    save_config,
)


@dataclass
class Inner:
    lr: float = 1e-3
    layers: int = 4


@dataclass
class Outer:
    name: str = "x"
    limit: int | None = None
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)


def test_overrides_are_typed():
    cfg = apply_overrides(Outer(), ["name=run1", "flag=true", "sizes=[3, 4, 5]", "inner.lr=0.01", "inner.layers=2"])
    assert cfg == Outer("run1", None, True, (3, 4, 5), Inner(0.01, 2))
    assert apply_overrides(Outer(), ["limit=5"]).limit == 5 and apply_overrides(Outer(), ["limit=null"]).limit is None
    assert Outer().inner.lr == 1e-3                         # the default is untouched
    assert apply_overrides(Outer(), {"inner.lr": 1}).inner.lr == 1.0 and isinstance(
        apply_overrides(Outer(), {"inner.lr": 1}).inner.lr, float)
    # YAML 1.1 reads an exponent without a dot ("2e-3") as a string; a float field still takes it as a number
    assert apply_overrides(Outer(), ["inner.lr=2e-3"]).inner.lr == 0.002


def test_a_wrong_type_is_a_user_error_naming_the_key():
    """``aslkit train optim.lr=fast`` gets one line from the CLI (a ValueError), not a traceback."""
    for bad in (["inner.lr=fast"], ["inner.lr=nan"], ["flag=maybe"]):
        with pytest.raises(ValueError, match=bad[0].split("=")[0].split(".")[-1]):
            apply_overrides(Outer(), bad)


@pytest.mark.parametrize("bad,err", [(["nope=1"], KeyError), (["inner.depth=1"], KeyError),
                                     (["flag=maybe"], TypeError), (["inner.layers=2.5"], TypeError),
                                     (["layers"], ValueError)])
def test_bad_overrides_name_the_key(bad, err):
    with pytest.raises(err):
        apply_overrides(Outer(), bad)


def test_presets_then_overrides():
    assert make_config(SynthConfig, "ci").size == "ci"
    cfg = make_config(SynthConfig, "quick", ["seed=5", "size=full"])
    assert (cfg.size, cfg.seed) == ("full", 5)
    assert make_config(DataConfig, "ci").synth_size == "ci"
    with pytest.raises(KeyError, match="unknown preset"):
        make_config(SynthConfig, "huge")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip(tmp_path, suffix):
    cfg = make_config(SynthConfig, "ci", {"seed": 7, "out": "some/where"})
    path = save_config(cfg, tmp_path / f"config{suffix}")
    assert "SynthConfig" in path.read_text()
    assert load_config(SynthConfig, path) == cfg


def test_parse_overrides_keeps_equals_in_values():
    assert parse_overrides(["out=a=b"]) == {"out": "a=b"}


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("ASLKIT_PROFILE", "ci")
    assert cfgmod.default_profile() == "ci"
    monkeypatch.setenv("ASLKIT_PROFILE", "bogus")
    with pytest.raises(ValueError, match="ASLKIT_PROFILE"):
        cfgmod.default_profile()


def test_free_form_dict_sub_configs():
    from aslkit.train import make_train_config
    cfg = make_train_config("ci", ["model.layers=3", "augment.lip_flip_p=0.25", "optim.epochs=5"])
    assert cfg.model["layers"] == 3 and cfg.model["hidden"] == 64          # preset keys kept
    assert cfg.augment == {"lip_flip_p": 0.25} and cfg.optim.epochs == 5
    with pytest.raises(TypeError, match="expected a mapping"):
        apply_overrides(cfg, {"model": 3})
