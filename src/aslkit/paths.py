"""Where data and outputs live: the project root, ``input/``, ``logs/``, and the data-directory resolution order.

Resolution of a competition's data directory, in order: an explicit path → ``input/<slug>/`` → ``/kaggle/input/<slug>/``
→ the synthetic copy ``input/synthetic/<slug>/`` (``<slug>-<size>/`` for sizes other than quick), generated on
first use. The choice is always printed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aslkit import constants as C
from aslkit.data.cache import check_cache_owner

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
# A file that must exist in a real download of each competition (used to recognise the data).
_SIGNATURE = {C.SLUG_SIGNS: "train.csv", C.SLUG_FS: "train.csv"}


def real_islr_sample() -> Path:
    """The real asl-signs sequence 2044/635217 shipped with the kit (7 frames, long format)."""
    return Path(__file__).resolve().parent / "assets" / "real" / "asl-signs_2044_635217.parquet"


def project_root() -> Path:
    """The kit's root: ``$ASLKIT_ROOT``, else the checkout holding this package, else ``/kaggle/working`` on Kaggle,
    else the current directory."""
    env = os.environ.get("ASLKIT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "aslkit").is_dir():
            if os.access(parent, os.W_OK):
                return parent
            break
    if KAGGLE_WORKING.is_dir():
        return KAGGLE_WORKING
    return Path.cwd().resolve()


def input_root() -> Path:
    """``input/`` under the project root (real downloads, the synthetic copies, prepared caches)."""
    return project_root() / "input"


def logs_root() -> Path:
    """``logs/`` under the project root (one folder per run)."""
    return project_root() / "logs"


@dataclass(frozen=True)
class DataSource:
    """A resolved data directory: where it is, whether it holds the real competition data, and why it was chosen."""

    path: Path
    is_real: bool
    origin: str           # "explicit", "input", "kaggle" or "synthetic"

    def describe(self) -> str:
        kind = "REAL competition data" if self.is_real else "SYNTHETIC data (aslkit synth)"
        return f"data: {self.path} [{kind}, from {self.origin}]"


def _is_synthetic(path: Path) -> bool:
    from aslkit.synth.writer import synthetic_info
    return synthetic_info(path) is not None


def resolve_data_dir(slug: str, data_dir: str | Path | None = None, synth_size: str | None = None, seed: int = 0,
                     verbose: bool = True, kaggle_input: Path = KAGGLE_INPUT) -> DataSource:
    """Find the data of ``slug`` (see module docstring); generate the synthetic copy when nothing else exists.

    ``synth_size`` (default ``$ASLKIT_SYNTH_SIZE`` or ``quick``) is the size of a synthetic copy; an existing copy of
    another size or seed is regenerated.
    """
    if slug not in C.SLUGS:
        raise ValueError(f"unknown competition {slug!r}; expected one of {C.SLUGS}")
    source = _find(slug, data_dir, kaggle_input)
    if source is None:
        source = _synthetic(slug, synth_size or os.environ.get("ASLKIT_SYNTH_SIZE", "quick"), seed, verbose)
    if verbose:
        print(source.describe())
    return source


def _find(slug: str, data_dir: str | Path | None, kaggle_input: Path) -> DataSource | None:
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir).expanduser().resolve()
        if not (path / _SIGNATURE[slug]).is_file():
            raise FileNotFoundError(f"{path}: no {_SIGNATURE[slug]} here; is this the {slug} download?")
        return DataSource(path, not _is_synthetic(path), "explicit")
    for origin, path in (("input", input_root() / slug), ("kaggle", kaggle_input / slug)):
        if (path / _SIGNATURE[slug]).is_file():
            return DataSource(path, not _is_synthetic(path), origin)
    return None


def synthetic_dir(slug: str, size: str) -> Path:
    """Where the synthetic copy of one size lives: ``input/synthetic/<slug>`` for ``quick`` (the default profile),
    ``input/synthetic/<slug>-<size>`` for the others, so that a ``ci`` run never overwrites the ``quick`` data."""
    return input_root() / "synthetic" / (slug if size == "quick" else f"{slug}-{size}")


def _synthetic(slug: str, size: str, seed: int, verbose: bool) -> DataSource:
    from aslkit.synth.writer import generate, synthetic_info
    path = synthetic_dir(slug, size)
    info = synthetic_info(path)
    if info is None or info.get("size") != size or info.get("seed") != seed or not (path / "train.csv").is_file():
        if verbose:
            print(f"generating synthetic {slug} ({size}, seed {seed}) into {path} ...", flush=True)
        generate(slug, path, size=size, seed=seed, overwrite=True)
    return DataSource(path, False, "synthetic")


def resolve_cache_folders(task: str, data_dir: str, out_dir: str, synth_size: str, subset_name: str
                          ) -> tuple[Path, Path]:
    """The absolute data folder of a preparation config (``resolve_data_dir``) and its cache folder: ``out_dir``, or
    ``default_out_dir`` of that data folder and ``subset_name``; DataError when that folder holds the cache of
    another data folder (``data.cache.check_cache_owner``)."""
    data = resolve_data_dir(task, data_dir or None, synth_size=synth_size).path
    out = Path(out_dir).expanduser().resolve() if out_dir else default_out_dir(task, subset_name, data)
    check_cache_owner(out, data)
    return data, out


def default_out_dir(task: str, subset: str, data_dir: str | Path | None = None) -> Path:
    """``input/prepared/<name of the data folder>/<subset>`` (``<task>`` when not given): the real download and the
    quick synthetic copy are ``<task>``, other synthetic sizes ``<task>-<size>``, so each keeps its own cache."""
    return input_root() / "prepared" / (Path(data_dir).name if data_dir else task) / subset
