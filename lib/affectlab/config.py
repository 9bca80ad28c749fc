"""Run configuration: profiles, seeds, device, data root, the configuration hash and the code
fingerprint (:func:`code_fingerprint`) that keys caches by the source that produced them.

Every chapter has one papermill parameters cell with plain literals (``PROFILE``, ``DATA_ROOT``,
``SEED``, ``DEVICE``); :func:`resolve_run` checks them and turns them into a :class:`RunConfig`.
Profiles:

- ``smoke``: seconds per chapter; proves every cell runs (tiny subsets, one epoch).
- ``quick``: this 2-core CPU, real data when the data root has it; each chapter <= 20 minutes.
- ``paper``: the paper's hyperparameters, meant for a GPU.

The data root comes from the argument, else the ``AFFECTLAB_DATA`` environment variable, else
``None`` (the embedded default: data the package generates itself).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import json
import os
import random
from pathlib import Path
from typing import Any, Mapping, NoReturn, TypeVar

import numpy as np
import torch

PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")
DATA_ENV = "AFFECTLAB_DATA"
CACHE_ENV = "AFFECTLAB_CACHE"
RUNS_ENV = "AFFECTLAB_RUNS"


class ConfigError(ValueError):
    """A parameter of the run is wrong; the message names the parameter."""


def is_int(value: Any) -> bool:
    """An integer that is not a bool (NumPy integers count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number that is not a bool (NumPy scalars count)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class FieldCheck:
    """Validates the fields of a configuration object (a chapter's ``ChapterConfig``); every failure
    raises :class:`ConfigError` naming ``Owner.field``, what was expected and the value given::

        check = FieldCheck(self)
        check.ints("epochs", "batch_size")              # int >= 1
        check.ints("test_size", optional=True)          # int >= 1 or None
        check.require(0 <= self.p <= 1, "p", "a probability in [0, 1]")
    """

    def __init__(self, obj: Any, owner: str | None = None) -> None:
        self.obj = obj
        self.owner = owner or type(obj).__name__

    def fail(self, field: str, expected: str) -> NoReturn:
        raise ConfigError(f"{self.owner}.{field} must be {expected}; got {getattr(self.obj, field)!r}")

    def require(self, ok: bool, field: str, expected: str) -> None:
        """Fail on ``field`` unless ``ok``."""
        if not ok:
            self.fail(field, expected)

    def ints(self, *fields: str, minimum: int = 1, optional: bool = False) -> None:
        """Each field an int >= ``minimum`` (or None with ``optional``)."""
        for field in fields:
            value = getattr(self.obj, field)
            if optional and value is None:
                continue
            if not is_int(value) or value < minimum:
                self.fail(field, f"an int >= {minimum}" + (" or None" if optional else ""))

    def numbers(self, *fields: str, above: float = 0.0, inclusive: bool = False) -> None:
        """Each field a number > ``above`` (>= with ``inclusive``)."""
        for field in fields:
            value = getattr(self.obj, field)
            if not is_number(value) or not (value >= above if inclusive else value > above):
                self.fail(field, f"a number {'>=' if inclusive else '>'} {above:g}")

    def bools(self, *fields: str) -> None:
        for field in fields:
            if not isinstance(getattr(self.obj, field), bool):
                self.fail(field, "a bool")

    def one_of(self, field: str, choices: Any) -> None:
        if getattr(self.obj, field) not in tuple(choices):
            self.fail(field, f"one of {tuple(choices)}")


ConfigT = TypeVar("ConfigT")


def profile_config(cls: type[ConfigT], profile: Any, table: Mapping[str, Mapping[str, Any]],
                   overrides: Mapping[str, Any]) -> ConfigT:
    """``cls(profile=profile, **table[profile], **overrides)`` for a chapter's ``chapter_config``; an
    unknown profile or an override that is not a field of ``cls`` raises :class:`ConfigError`
    naming it (instead of a TypeError deep in the dataclass)."""
    profile = check_profile(profile)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown} for chapter_config; known fields: {sorted(names)}")
    return cls(profile=profile, **{**table[profile], **overrides})


def check_profile(profile: Any) -> str:
    """Return ``profile`` if it is one of :data:`PROFILES`, else raise a clear error."""
    if not isinstance(profile, str):
        raise ConfigError(
            f"parameter PROFILE must be a string, one of {PROFILES}; got {type(profile).__name__} "
            f"{profile!r}"
        )
    if profile not in PROFILES:
        raise ConfigError(f"parameter PROFILE={profile!r} is unknown; choose one of {PROFILES}")
    return profile


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"parameter SEED must be an int; got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ConfigError(f"parameter SEED must be >= 0; got {seed}")
    return seed


def resolve_data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The data root: ``root``, else ``$AFFECTLAB_DATA``, else ``None`` (embedded default).

    A root that is named but does not exist is an error naming where it came from.
    """
    source = "parameter DATA_ROOT"
    if root is None or root == "":
        env = os.environ.get(DATA_ENV, "")
        if not env:
            return None
        root, source = env, f"environment variable {DATA_ENV}"
    if not isinstance(root, (str, os.PathLike)):
        raise ConfigError(f"{source} must be a path string; got {type(root).__name__} {root!r}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{source}={str(root)!r} is not an existing directory")
    return path.resolve()


def resolve_device(device: Any = "auto") -> torch.device:
    """``'auto'`` picks CUDA when present, else CPU; ``'cpu'``/``'cuda'``/``'cuda:N'`` are checked."""
    if not isinstance(device, str):
        raise ConfigError(f"parameter DEVICE must be a string; got {type(device).__name__} {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"parameter DEVICE={device!r} is not a torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"parameter DEVICE={device!r} asks for CUDA but none is available")
    return dev


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; on CPU also ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, torch.device):
        return str(value)
    return value


def config_to_json(config: Any) -> str:
    """Canonical JSON of a config (dataclass or mapping): sorted keys, no whitespace variance."""
    return json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))


def config_hash(config: Any, length: int = 12) -> str:
    """SHA-256 of the canonical JSON of ``config``, shortened; keys train-or-load caches."""
    return hashlib.sha256(config_to_json(config).encode()).hexdigest()[:length]


def default_cache_dir() -> Path:
    """Where tensor caches go: ``$AFFECTLAB_CACHE`` else ``~/.cache/affectlab``."""
    env = os.environ.get(CACHE_ENV)
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "affectlab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_runs_dir() -> Path:
    """Where checkpoints and run logs go: ``$AFFECTLAB_RUNS`` else ``./runs``."""
    env = os.environ.get(RUNS_ENV)
    path = Path(env).expanduser() if env else Path.cwd() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The resolved parameters cell of a chapter."""

    profile: str
    data_root: Path | None
    seed: int
    device: torch.device

    @property
    def data_label(self) -> str:
        """Short text for captions: which data root a result came from."""
        return "embedded default (generated)" if self.data_root is None else f"data root {self.data_root}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "data_root": None if self.data_root is None else str(self.data_root),
            "seed": self.seed,
            "device": str(self.device),
        }


def resolve_run(profile: Any, data_root: Any = None, seed: Any = 0, device: Any = "auto") -> RunConfig:
    """Check a chapter's parameters cell and seed the run. Errors name the bad parameter."""
    run = RunConfig(
        profile=check_profile(profile),
        data_root=resolve_data_root(data_root),
        seed=check_seed(seed),
        device=resolve_device(device),
    )
    seed_everything(run.seed)
    return run


def pick(profile: str, **choices: Any) -> Any:
    """Choose a value by profile: ``pick(run.profile, smoke=1, quick=10, paper=60)``."""
    check_profile(profile)
    if profile not in choices:
        raise ConfigError(f"no value given for profile {profile!r}; given: {sorted(choices)}")
    return choices[profile]


_SOURCE_INFO: dict[tuple[str, int, int], tuple[str, tuple[tuple[int, str, tuple[str, ...]], ...]]] = {}
"""(path, mtime_ns, size) -> (SHA-256 of the file, its imports as (level, module, names))."""


def _source_info(path: Path) -> tuple[str, tuple[tuple[int, str, tuple[str, ...]], ...]]:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _SOURCE_INFO:
        data = path.read_bytes()
        imports = []
        for node in ast.walk(ast.parse(data, filename=str(path))):  # module level and inside functions
            if isinstance(node, ast.Import):
                imports += [(0, alias.name, ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imports.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
        _SOURCE_INFO[key] = (hashlib.sha256(data).hexdigest(), tuple(imports))
    return _SOURCE_INFO[key]


def _module_file(name: str) -> Path | None:
    """The source file of module ``name``, found on disk below its top-level package (nothing but
    that package is imported); None when it is not a module (e.g. a function name)."""
    top, _, rest = name.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    if not spec.submodule_search_locations:  # a plain top-level module
        return Path(spec.origin) if not rest and spec.origin.endswith(".py") else None
    for location in spec.submodule_search_locations:
        base = Path(location).joinpath(*rest.split(".")) if rest else Path(location)
        for candidate in (base / "__init__.py", base.parent / f"{base.name}.py") if rest else (base / "__init__.py",):
            if candidate.is_file():
                return candidate
    return None


def code_files(*modules: str) -> dict[str, Path]:
    """Module name -> source file for ``modules`` and, transitively, every module of the same
    top-level package that they import (``import``/``from ... import`` anywhere in the file,
    including inside functions; relative imports resolved). Other packages are not followed: their
    versions belong in a cache key separately (e.g. ``torch.__version__``)."""
    found: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _module_file(name)
        if path is None:
            if name in modules:
                raise ConfigError(f"code_fingerprint: {name!r} is not an importable Python source module")
            continue
        found[name] = path
        top = name.split(".")[0]
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for level, module, names in _source_info(path)[1]:
            if level:
                base = package.rsplit(".", level - 1)[0] if level > 1 else package
                module = f"{base}.{module}" if module else base
            if module.split(".")[0] != top:
                continue
            submodules = [f"{module}.{n}" for n in names if n != "*" and _module_file(f"{module}.{n}")]
            todo += submodules if submodules and len(submodules) == len(names) else [module, *submodules]
    return found


def code_fingerprint(*modules: str, length: int = 16) -> str:
    """SHA-256 over the source of ``modules`` and the package modules they import (see
    :func:`code_files`): a cache keyed by it is rebuilt when the code that produced it changes,
    never served stale. File hashes are memoised by (path, mtime, size), so calls are cheap."""
    files = code_files(*modules)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\t{_source_info(files[name])[0]}\n".encode())
    return digest.hexdigest()[:length]
