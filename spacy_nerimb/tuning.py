"""Hyper-parameter tuning with Optuna: choose the imbalance method and its settings on dev.

A study samples, per trial, a loss family and its hyper-parameters, a sentence
resampling method and any other config setting declared in a search space, and
trains that config with spaCy's own training loop (``training.train_config``).
The trial's value is the best dev score (``ents_macro_f`` by default) seen at
spaCy's evaluations; each evaluation is reported to the trial by the
``spacy-nerimb.TrialReporter.v1`` training logger, which also lets the pruner
stop an unpromising trial early and fails a trial whose loss became NaN.

Studies live in an Optuna storage: an SQLite file in the output directory by
default, or any database URL (PostgreSQL) that several workers on several
machines share. Everything about a trial that is needed later (its complete
config, its scores, the worker that ran it, its error) is stored in the study,
so reports and the best config can be written from the storage alone.

Optuna is imported lazily: the logger and the search-space parser work without it.
"""
import contextlib
import contextvars
import csv
import difflib
import io
import json
import math
import os
import shutil
import socket
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from spacy.util import registry
from thinc.api import Config

from .training import LOSS_PRESETS, train_config
from .util import PathLike, atomic_path, markdown_table, write_json_atomic, write_text_atomic

DEFAULT_OBJECTIVE = "ents_macro_f"
DEFAULT_STUDY_NAME = "nerimb-tune"
STUDY_DB = "study.db"
TRIAL_LOGGER = "spacy-nerimb.TrialReporter.v1"
RESAMPLED_READER = "spacy-nerimb.ResampledCorpus.v1"
RESAMPLING_METHODS = ("none", "sC", "sCR", "sCRD", "nsCRD")
COMPONENT_FACTORY = "imbalanced_ner"

# Modules whose import registers optional functions (when the entry point is missing).
_OPTIONAL_MODULES = {
    "losses": ("spacy_nerimb.losses", "spacy_nerimb.losses.auc", "spacy_nerimb.losses.crf"),
    "readers": ("spacy_nerimb.resampling",),
}

# The default search space: the paper ranges (MoM λ 0–1, focal γ 0–10, WCE-2 β 1–10).
DEFAULT_SPACE: Dict[str, Any] = {
    "methods": {
        "ce": {},
        "wce1": {},
        "wce2": {"beta": {"low": 1.0, "high": 10.0}},
        "focal": {"gamma": {"low": 0.0, "high": 10.0}},
        "dice": {"alpha": {"low": 0.001, "high": 1.0, "log": True}},
        "mom": {"lam": {"low": 0.0, "high": 1.0}},
        "auc2t": {"margin": {"low": 0.1, "high": 2.0}},
        "crf": {},
    },
    "resampling": list(RESAMPLING_METHODS),
    "params": {"training.optimizer.learn_rate": {"low": 0.0002, "high": 0.01, "log": True}},
}


def stderr_printer() -> Callable[[str], None]:
    """Print to the stderr of *now*: spaCy's output is redirected while a trial trains."""
    stream = sys.stderr

    def say(message: str) -> None:
        print(message, file=stream, flush=True)

    return say


class TuningError(ValueError):
    """A setting, a search space or a study that cannot be used (the message names it)."""


class TrialFailure(RuntimeError):
    """A trial that could not produce a score (NaN loss, config error, no evaluation)."""


# ----------------------------------------------------------------------------
# Registry look-ups
# ----------------------------------------------------------------------------
def registered(kind: str, name: str) -> bool:
    """Whether ``name`` resolves in spaCy's registry ``kind`` (importing optional modules)."""
    if registry.has(kind, name):
        return True
    for module in _OPTIONAL_MODULES.get(kind, ()):
        try:
            __import__(module)
        except ImportError:
            continue
        if registry.has(kind, name):
            return True
    return False


def import_optional_modules() -> None:
    """Import the modules that register optional losses and readers (where they exist), so
    configs naming them work in this process even before their entry points are installed."""
    for modules in _OPTIONAL_MODULES.values():
        for module in modules:
            try:
                __import__(module)
            except ImportError:
                pass


def method_loss(name: str) -> Optional[Dict[str, Any]]:
    """The loss block of a known method name, or ``None``."""
    if name in LOSS_PRESETS:
        return json.loads(json.dumps(LOSS_PRESETS[name]))
    return None


def available_methods() -> List[str]:
    """Method names whose losses are registered in this installation."""
    names = list(LOSS_PRESETS)
    return [n for n in names if all(registered("losses", f) for f in _loss_functions(method_loss(n)))]


def resampling_available() -> bool:
    return registered("readers", RESAMPLED_READER)


def _loss_functions(block: Any) -> List[str]:
    """Every ``@losses`` name inside a loss block (nested bases included)."""
    found: List[str] = []
    if isinstance(block, dict):
        if "@losses" in block:
            found.append(block["@losses"])
        for value in block.values():
            found.extend(_loss_functions(value))
    return found


# ----------------------------------------------------------------------------
# Search space
# ----------------------------------------------------------------------------
@dataclass
class ParamSpec:
    """One dimension: ``fixed`` value, ``categorical`` choices, or ``float``/``int`` range."""

    kind: str
    value: Any = None
    choices: Tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: Optional[float] = None

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def example(self) -> Any:
        """A value inside the dimension (used to check a space before the study starts)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return self.choices[0]
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return int(round(mid)) if self.kind == "int" else float(mid)

    def to_dict(self) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return list(self.choices)
        out: Dict[str, Any] = {"low": self.low, "high": self.high}
        if self.kind == "int":
            out["type"] = "int"
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise TuningError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    try:  # YAML 1.1 reads 1e-4 (no dot) as a string
        return float(str(value))
    except ValueError:
        raise TuningError(f"{where}: expected a number, got {value!r}") from None


def parse_param(spec: Any, where: str) -> ParamSpec:
    """A dimension from its file form: a scalar (fixed), a list (choices) or a range mapping."""
    if isinstance(spec, list):
        if not spec:
            raise TuningError(f"{where}: an empty list of choices")
        return ParamSpec("categorical", choices=tuple(spec))
    if not isinstance(spec, dict):
        return ParamSpec("fixed", value=spec)
    if "@losses" in spec or "@readers" in spec:
        return ParamSpec("fixed", value=spec)
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise TuningError(f"{where}: 'choices' must be a non-empty list and stand alone")
        return ParamSpec("categorical", choices=tuple(spec["choices"]))
    if "value" in spec and set(spec) == {"value"}:
        return ParamSpec("fixed", value=spec["value"])
    unknown = set(spec) - {"low", "high", "log", "step", "type"}
    if unknown or "low" not in spec or "high" not in spec:
        raise TuningError(
            f"{where}: a range needs 'low' and 'high' (optional 'log', 'step', 'type: int|float'); "
            f"got keys {sorted(spec)}"
        )
    kind = spec.get("type", "float")
    if kind not in ("float", "int"):
        raise TuningError(f"{where}: type must be 'float' or 'int', got {kind!r}")
    low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
    if not low < high:
        raise TuningError(f"{where}: low ({low}) must be below high ({high})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise TuningError(f"{where}: a log range needs low > 0, got {low}")
    step = _number(spec["step"], f"{where}.step") if spec.get("step") is not None else None
    if log and step is not None:
        raise TuningError(f"{where}: 'log' and 'step' cannot be combined")
    return ParamSpec(kind, low=low, high=high, log=log, step=step)


@dataclass
class MethodSpec:
    """A loss family: its base loss block and the dimensions inside that block."""

    name: str
    loss: Dict[str, Any]
    params: Dict[str, ParamSpec] = field(default_factory=dict)


@dataclass
class TrialChoice:
    """What one trial trains: config overrides plus the values that were sampled."""

    method: str
    resampling: str
    overrides: Dict[str, Any]
    values: Dict[str, Any]


def _set_path(block: Dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = block
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise TuningError(f"loss setting {path!r}: {key!r} is not a block")
    node[keys[-1]] = value


@dataclass
class SearchSpace:
    """Methods (loss families) × resampling × other config settings."""

    methods: Dict[str, MethodSpec]
    resampling: ParamSpec
    params: Dict[str, ParamSpec]
    source: str = "<default space>"

    # -- reading -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "<space>") -> "SearchSpace":
        if not isinstance(data, dict):
            raise TuningError(f"{source}: a search space is a mapping with 'methods', 'resampling', 'params'")
        unknown = set(data) - {"methods", "resampling", "params"}
        if unknown:
            raise TuningError(
                f"{source}: unknown top-level key(s) {sorted(unknown)} "
                "(expected methods, resampling, params)"
            )
        raw_methods = data.get("methods", {"ce": {}})
        if isinstance(raw_methods, list):
            raw_methods = {name: {} for name in raw_methods}
        if not isinstance(raw_methods, dict) or not raw_methods:
            raise TuningError(f"{source}: 'methods' must be a non-empty mapping (or list) of method names")
        methods: Dict[str, MethodSpec] = {}
        for name, body in raw_methods.items():
            where = f"{source}: methods.{name}"
            body = dict(body or {})
            loss = body.pop("loss", None)
            if loss is None:
                loss = method_loss(name)
                if loss is None:
                    known = ", ".join(LOSS_PRESETS)
                    raise TuningError(
                        f"{where}: unknown method; use one of {known}, or give a 'loss' block "
                        '(e.g. loss: {"@losses": "spacy-nerimb.Focal.v1"})'
                    )
            if not isinstance(loss, dict) or "@losses" not in loss:
                raise TuningError(f"{where}.loss: expected a block with '@losses', got {loss!r}")
            params = {key: parse_param(spec, f"{where}.{key}") for key, spec in body.items()}
            methods[str(name)] = MethodSpec(str(name), loss, params)
        resampling = parse_param(data.get("resampling", "none"), f"{source}: resampling")
        options = resampling.choices if resampling.kind == "categorical" else (resampling.value,)
        if resampling.kind not in ("categorical", "fixed"):
            raise TuningError(f"{source}: resampling must be a method name or a list of names")
        canonical = tuple(_resampling_name(str(o), f"{source}: resampling") for o in options)
        resampling = (ParamSpec("categorical", choices=canonical) if resampling.kind == "categorical"
                      else ParamSpec("fixed", value=canonical[0]))
        raw_params = data.get("params", {}) or {}
        if not isinstance(raw_params, dict):
            raise TuningError(f"{source}: 'params' must map config settings (dotted paths) to dimensions")
        params = {str(k): parse_param(v, f"{source}: params.{k}") for k, v in raw_params.items()}
        return cls(methods, resampling, params, source)

    @classmethod
    def load(cls, path: PathLike) -> "SearchSpace":
        path = Path(path)
        if not path.exists():
            raise TuningError(f"--space {path}: file not found")
        text = path.read_text(encoding="utf8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as err:  # yaml.YAMLError / json.JSONDecodeError
            raise TuningError(f"--space {path}: cannot parse: {err}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def default(cls) -> "SearchSpace":
        """The paper ranges over the methods and resampling this installation provides."""
        data = json.loads(json.dumps(DEFAULT_SPACE))
        usable = set(available_methods())
        data["methods"] = {k: v for k, v in data["methods"].items() if k in usable}
        if not resampling_available():
            data["resampling"] = "none"
        return cls.from_dict(data, source="<default space>")

    def to_dict(self) -> Dict[str, Any]:
        methods = {}
        for name, spec in self.methods.items():
            body: Dict[str, Any] = {"loss": spec.loss}
            body.update({k: p.to_dict() for k, p in spec.params.items()})
            methods[name] = body
        return {
            "methods": methods,
            "resampling": self.resampling.to_dict(),
            "params": {k: p.to_dict() for k, p in self.params.items()},
        }

    # -- checking ------------------------------------------------------------
    def check(self, base: Config, component: str) -> None:
        """Fail before any training when a method, reader or setting cannot work."""
        for spec in self.methods.values():
            where = f"{self.source}: methods.{spec.name}"
            for function in _loss_functions(spec.loss):
                if not registered("losses", function):
                    raise TuningError(
                        f"{where}: loss {function!r} is not registered in this installation "
                        f"(available methods: {', '.join(available_methods())})"
                    )
            block = self._loss_block(spec, {k: p.example() for k, p in spec.params.items()})
            try:
                registry.resolve({"loss": block}, validate=True)
            except Exception as err:
                raise TuningError(f"{where}: the loss block {block} is not valid: {err}") from None
        if any(m != "none" for m in self._resampling_options()) and not resampling_available():
            raise TuningError(
                f"{self.source}: resampling {list(self._resampling_options())} needs the reader "
                f"{RESAMPLED_READER!r}, which is not registered in this installation; use 'none'"
            )
        for path in self.params:
            _check_setting(base, path, f"{self.source}: params.{path}")
        _check_setting(base, f"components.{component}.loss", f"component {component!r}")

    def _resampling_options(self) -> Tuple[str, ...]:
        r = self.resampling
        return tuple(r.choices) if r.kind == "categorical" else (r.value,)

    @staticmethod
    def _loss_block(spec: MethodSpec, values: Dict[str, Any]) -> Dict[str, Any]:
        block = json.loads(json.dumps(spec.loss))
        for key, value in values.items():
            _set_path(block, key, value)
        return block

    # -- sampling ------------------------------------------------------------
    def sample(self, trial: Any, component: str) -> TrialChoice:
        """Suggest the trial's values (define-by-run) and turn them into config overrides."""
        names = list(self.methods)
        method = trial.suggest_categorical("method", names) if len(names) > 1 else names[0]
        spec = self.methods[method]
        values: Dict[str, Any] = {"method": method}
        loss_values = {}
        for key, param in spec.params.items():
            loss_values[key] = param.suggest(trial, f"{method}.{key}")
            values[f"{method}.{key}"] = loss_values[key]
        resampling = self.resampling.suggest(trial, "resampling")
        values["resampling"] = resampling
        overrides: Dict[str, Any] = {f"components.{component}.loss": self._loss_block(spec, loss_values)}
        if resampling != "none":
            overrides["corpora.train"] = resampled_reader_block(resampling)
        for path, param in self.params.items():
            values[path] = overrides[path] = param.suggest(trial, path)
        return TrialChoice(method, resampling, overrides, values)


def _resampling_name(name: str, where: str) -> str:
    for canonical in RESAMPLING_METHODS:
        if name.lower() == canonical.lower():
            return canonical
    raise TuningError(f"{where}: unknown resampling method {name!r} (expected one of {', '.join(RESAMPLING_METHODS)})")


def resampled_reader_block(method: str) -> Dict[str, Any]:
    return {"@readers": RESAMPLED_READER, "path": "${paths.train}", "method": method,
            "seed": "${system.seed}"}


def _check_setting(config: Config, path: str, where: str) -> None:
    node: Any = config
    walked: List[str] = []
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            options = sorted(node) if isinstance(node, dict) else []
            close = difflib.get_close_matches(key, options, n=1)
            hint = f" (did you mean {'.'.join(walked + [close[0]])!r}?)" if close else ""
            raise TuningError(f"{where}: {path!r} is not a setting of the config{hint}")
        node = node[key]
        walked.append(key)


# ----------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------
def load_base_config(path: PathLike, overrides: Optional[Dict[str, Any]] = None) -> Config:
    """``path`` with ``overrides``, filled with every default (so the space can be checked)."""
    import spacy

    path = Path(path)
    if not path.exists():
        raise TuningError(f"CONFIG {path}: file not found")
    try:
        config = spacy.util.load_config(path, overrides=dict(overrides or {}), interpolate=False)
        nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    except Exception as err:
        raise TuningError(f"CONFIG {path}: cannot be loaded: {err}") from None
    return nlp.config.copy()


def find_component(config: Config, name: Optional[str] = None) -> str:
    """The ``imbalanced_ner`` component the losses go to (``name`` when given)."""
    components = config.get("components", {})
    if name is not None:
        if name not in components:
            raise TuningError(f"--component {name!r}: no such component (have {sorted(components)})")
        return name
    found = [n for n, block in components.items() if block.get("factory") == COMPONENT_FACTORY]
    if len(found) != 1:
        raise TuningError(
            f"the config has {len(found)} '{COMPONENT_FACTORY}' components ({found}); "
            "name the one to tune with --component"
        )
    return found[0]


def apply_overrides(config: Config, overrides: Dict[str, Any]) -> Config:
    """``config`` with dotted-path overrides (whole blocks allowed), through thinc's own parser."""
    return Config().from_str(config.to_str(), overrides=overrides, interpolate=False)


def with_trial_logger(config: Config, objective: str) -> Config:
    """The config with its training logger wrapped by the trial reporter."""
    base = config["training"].get("logger")
    block: Dict[str, Any] = {"@loggers": TRIAL_LOGGER, "objective": objective}
    if base:
        block["base"] = base
    return apply_overrides(config, {"training.logger": block})


def ready_config(config: Config, objective: str) -> Config:
    """A config to train as it stands: data paths unset, model chosen by ``objective``."""
    weights = dict(config["training"].get("score_weights") or {})
    weights = {k: (0.0 if v is not None else None) for k, v in weights.items()}
    weights[objective] = 1.0
    return apply_overrides(config, {"paths.train": None, "paths.dev": None, "training.score_weights": weights})


# ----------------------------------------------------------------------------
# The trial reporter: a spaCy training logger
# ----------------------------------------------------------------------------
class TrialMonitor:
    """Receives spaCy's evaluations for one trial; reports them and decides pruning."""

    def __init__(self, trial: Any = None, progress: Optional[Callable[[str], None]] = None) -> None:
        self.trial = trial
        self.progress = progress
        self.history: List[Tuple[int, float]] = []
        self.best_scores: Dict[str, Any] = {}

    def observe(self, info: Dict[str, Any], objective: str) -> None:
        step = int(info["step"])
        for pipe, loss in (info.get("losses") or {}).items():
            if not math.isfinite(float(loss)):
                raise TrialFailure(f"training loss of {pipe!r} is {float(loss)} at step {step}")
        scores = info.get("other_scores") or {}
        if objective not in scores:
            numeric = sorted(k for k, v in scores.items() if isinstance(v, (int, float)))
            raise TuningError(f"--objective {objective!r} is not a dev score; available: {', '.join(numeric)}")
        value = scores[objective]
        value = float("nan") if value is None else float(value)
        if not math.isfinite(value):
            raise TrialFailure(f"dev {objective} is {value} at step {step}")
        if not self.history or value > max(v for _, v in self.history):
            self.best_scores = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
            self.best_scores["step"] = step
        self.history.append((step, value))
        if self.progress:
            self.progress(f"  step {step:>6}  {objective} {value:.4f}")
        if self.trial is not None:
            self.trial.report(value, step)
            if self.trial.should_prune():
                import optuna

                raise optuna.TrialPruned(f"pruned at step {step} ({objective} {value:.4f})")

    def best(self) -> Optional[float]:
        return max(v for _, v in self.history) if self.history else None


_ACTIVE_MONITOR: contextvars.ContextVar = contextvars.ContextVar("nerimb_trial_monitor", default=None)


@contextlib.contextmanager
def monitoring(monitor: TrialMonitor) -> Iterator[TrialMonitor]:
    """Make ``monitor`` receive the evaluations of trainings started inside the block."""
    token = _ACTIVE_MONITOR.set(monitor)
    try:
        yield monitor
    finally:
        _ACTIVE_MONITOR.reset(token)


@registry.loggers(TRIAL_LOGGER)
def make_trial_logger(objective: str = DEFAULT_OBJECTIVE, base: Optional[Callable] = None) -> Callable:
    """Training logger: passes every step to ``base`` (e.g. the console logger) and each
    evaluation to the active :class:`TrialMonitor`, which reports ``objective`` to the
    Optuna trial and raises ``TrialPruned`` when the pruner says so. With no tuning
    under way it is a plain pass-through."""

    def setup(nlp: Any, stdout: Any = sys.stdout, stderr: Any = sys.stderr):
        if base is not None:
            base_step, base_finalize = base(nlp, stdout, stderr)
        else:
            base_step, base_finalize = (lambda info: None), (lambda: None)
        monitor = _ACTIVE_MONITOR.get()

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            base_step(info)
            if info is not None and monitor is not None:
                monitor.observe(info, objective)

        return log_step, base_finalize

    return setup


# ----------------------------------------------------------------------------
# Storage and study
# ----------------------------------------------------------------------------
def storage_url(storage: Optional[str], output_dir: PathLike) -> str:
    """The database URL: ``storage`` as given, a bare file path as SQLite, default ``study.db``."""
    if not storage:
        return f"sqlite:///{(Path(output_dir) / STUDY_DB).resolve()}"
    if "://" not in storage:
        return f"sqlite:///{Path(storage).resolve()}"
    if storage.startswith("postgresql://") and not _importable("psycopg") and _importable("psycopg2"):
        return "postgresql+psycopg2://" + storage[len("postgresql://"):]  # SQLAlchemy 2.1 defaults to psycopg 3
    return storage


def redact(url: str) -> str:
    """The URL without its password (for messages and reports)."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


SCHEMA_RACE_RETRIES = 5


def is_schema_creation_race(err: BaseException) -> bool:
    """Whether opening a storage failed because another worker created the same tables first.

    Workers started together on a fresh database all try to create Optuna's schema; all but
    one fail on a duplicate type or table. Opening again then finds the schema in place.
    """
    text = str(err).lower()
    return "already exists" in text or "duplicate key" in text or "uniqueviolation" in text


def open_storage(url: str, heartbeat: int = 60) -> Any:
    """An Optuna RDB storage with heartbeats: a worker that dies leaves a trial that the
    next worker fails and queues again (``RetryHeartbeatStaleTrialCallback``)."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    engine: Dict[str, Any] = {}
    if url.startswith("sqlite"):
        Path(url.split("sqlite:///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 120}}
    else:
        engine = {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # Optuna >= 4.9 names it heartbeat_stale_trial_callback; older versions failed_trial_callback
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        if retry is not None:
            callback = {"heartbeat_stale_trial_callback": retry(max_retry=1)}
        else:
            callback = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}
        for attempt in range(SCHEMA_RACE_RETRIES + 1):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                    **callback,
                )
            except ModuleNotFoundError as err:
                raise TuningError(
                    f"--storage {redact(url)}: the database driver is missing ({err.name}); for "
                    "PostgreSQL: pip install 'psycopg[binary]' (or psycopg2-binary with postgresql+psycopg2://…)"
                ) from None
            except ImportError as err:
                raise TuningError(
                    f"--storage {redact(url)}: cannot load the database driver ({err}); for PostgreSQL: "
                    "pip install 'psycopg[binary]' (or psycopg2-binary with postgresql+psycopg2://…)"
                ) from None
            except Exception as err:
                if attempt < SCHEMA_RACE_RETRIES and is_schema_creation_race(err):
                    # another worker is creating the tables of a fresh database right now
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise TuningError(f"--storage {redact(url)}: cannot open the study storage: {err}") from None
    raise AssertionError("unreachable")  # the loop returns or raises


def load_study(storage: Any, study_name: str) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise TuningError(f"--study-name {study_name!r}: no such study in the storage (have {names})") from None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _retried_numbers(trials: Sequence[Any]) -> set:
    out = set()
    for t in trials:
        if "failed_trial" in t.system_attrs:
            out.add(t.system_attrs["failed_trial"])
        if "retry_of" in t.user_attrs:
            out.add(t.user_attrs["retry_of"])
    return out


def finished_count(study: Any) -> int:
    """Trials that used up budget: complete, pruned, or failed and not queued again."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = _retried_numbers(trials)
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return sum(1 for t in trials if t.state in done or (t.state == TrialState.FAIL and t.number not in retried))


def requeue_interrupted(study: Any) -> List[int]:
    """Queue again the parameters of trials stopped by Ctrl-C (once each)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = _retried_numbers(trials)
    queued = []
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            queued.append(t.number)
    return queued


@contextlib.contextmanager
def _captured_output(log_path: Path) -> Iterator[None]:
    """Send spaCy's training output (stdout and stderr) to the trial's log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        yield


def _log_tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(encoding="utf8", errors="replace")[-n:]
    except OSError:
        return ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _describe(values: Dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in values.items())


def train_one(config: Config, output_dir: Path, train_path: PathLike, dev_path: PathLike, *,
              monitor: Optional[TrialMonitor] = None, gpu_id: int = -1,
              overrides: Optional[Dict[str, Any]] = None) -> Path:
    """``train_config`` with spaCy's output in ``output_dir/train.log``; a config error
    (spaCy exits on those) becomes an exception that carries the log's tail."""
    log = output_dir / "train.log"
    try:
        with contextlib.ExitStack() as stack:
            if monitor is not None:
                stack.enter_context(monitoring(monitor))
            stack.enter_context(_captured_output(log))
            return train_config(config, output_dir, train_path, dev_path, gpu_id=gpu_id, overrides=overrides)
    except SystemExit as err:
        raise TrialFailure(f"spaCy stopped training (exit {err.code}): {_log_tail(log, 800).strip()}") from None


@dataclass
class TuneSettings:
    """Everything a tuning run needs (the CLI fills it from its options)."""

    config_path: PathLike
    train_path: PathLike
    dev_path: PathLike
    output_dir: PathLike
    space: Optional[SearchSpace] = None
    n_trials: int = 20
    timeout: Optional[float] = None
    storage: Optional[str] = None
    study_name: str = DEFAULT_STUDY_NAME
    seed: int = 0
    sampler_seed: Optional[int] = None
    objective: str = DEFAULT_OBJECTIVE
    pruning: bool = True
    prune_startup: int = 5
    prune_warmup: Optional[int] = None
    startup_trials: int = 10
    component: Optional[str] = None
    config_overrides: Dict[str, Any] = field(default_factory=dict)
    enqueue: List[Dict[str, Any]] = field(default_factory=list)
    keep_models: bool = False
    heartbeat: int = 60
    gpu_id: int = -1
    progress: Callable[[str], None] = field(default_factory=stderr_printer)


def sampler_seed(settings: "TuneSettings", storage: Any) -> int:
    """The TPE seed: from ``--sampler-seed`` (default ``--seed``) and the number of trials the
    study already holds, so a resumed study does not replay its random start-up points while
    a fresh one stays reproducible."""
    import numpy
    import optuna

    base = settings.seed if settings.sampler_seed is None else settings.sampler_seed
    try:
        existing = len(optuna.load_study(study_name=settings.study_name, storage=storage).trials)
    except KeyError:
        existing = 0
    return int(numpy.random.SeedSequence([int(base), existing]).generate_state(1)[0])


def create_study(settings: TuneSettings, storage: Any, eval_frequency: int) -> Any:
    import optuna

    sampler = optuna.samplers.TPESampler(seed=sampler_seed(settings, storage),
                                         n_startup_trials=settings.startup_trials)
    if settings.pruning:
        warmup = eval_frequency if settings.prune_warmup is None else settings.prune_warmup
        pruner: Any = optuna.pruners.MedianPruner(n_startup_trials=settings.prune_startup, n_warmup_steps=warmup)
    else:
        pruner = optuna.pruners.NopPruner()
    try:
        study = optuna.create_study(storage=storage, study_name=settings.study_name, sampler=sampler,
                                    pruner=pruner, direction="maximize", load_if_exists=True)
    except Exception as err:
        raise TuningError(f"--study-name {settings.study_name!r}: cannot create or load the study: {err}") from None
    stored = study.user_attrs.get("objective")
    if stored is None:
        study.set_user_attr("objective", settings.objective)
    elif stored != settings.objective:
        raise TuningError(
            f"--objective {settings.objective!r}: study {settings.study_name!r} optimises {stored!r}; "
            "use the same objective or a new --study-name"
        )
    return study


def run_study(settings: TuneSettings) -> Dict[str, Any]:
    """Run (or continue) a study until it holds ``n_trials`` finished trials or time runs out,
    then write the reports. Returns the summary (also in ``summary.json``)."""
    import optuna

    say = settings.progress
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for label, path in (("--train", settings.train_path), ("--dev", settings.dev_path)):
        if not Path(path).exists():
            raise TuningError(f"{label} {path}: file not found")
    overrides = dict(settings.config_overrides)
    overrides["system.seed"] = settings.seed
    base = load_base_config(settings.config_path, overrides)
    component = find_component(base, settings.component)
    space = settings.space or SearchSpace.default()
    space.check(base, component)
    eval_frequency = int(base["training"]["eval_frequency"])
    url = storage_url(settings.storage, output_dir)
    storage = open_storage(url, settings.heartbeat)
    study = create_study(settings, storage, eval_frequency)
    stored_space, current_space = study.user_attrs.get("space"), _jsonable(space.to_dict())
    if stored_space is not None and stored_space != current_space and study.trials:
        raise TuningError(
            f"study {settings.study_name!r} was run with another search space (methods "
            f"{list(stored_space.get('methods', {}))}, resampling {stored_space.get('resampling')}); "
            f"Optuna cannot change a parameter's choices within a study: pass the same --space "
            f"(this one: {space.source}) or start a new --study-name"
        )
    study.set_user_attr("space", current_space)
    requeued = requeue_interrupted(study)
    if requeued:
        say(f"queued again the interrupted trial(s) {requeued}")
    for params in settings.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    done = finished_count(study)
    say(f"study {settings.study_name!r} in {redact(url)}: {done} finished trial(s), target {settings.n_trials}"
        f"; methods {list(space.methods)}; objective {settings.objective}")
    worker = worker_id()
    start = time.perf_counter()
    fatal: List[TuningError] = []  # a setting error (e.g. --objective) that every trial would hit

    def objective(trial: Any) -> float:
        choice = space.sample(trial, component)
        trial_dir = output_dir / "trials" / f"trial_{trial.number:04d}"
        if trial_dir.exists():
            shutil.rmtree(trial_dir)
        config = apply_overrides(base, choice.overrides)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("method", choice.method)
        trial.set_user_attr("resampling", choice.resampling)
        trial.set_user_attr("overrides", _jsonable(choice.overrides))
        trial.set_user_attr("config", ready_config(config, settings.objective).to_str())
        say(f"trial {trial.number}: {_describe(choice.values)}")
        monitor = TrialMonitor(trial, progress=say)
        t0 = time.perf_counter()
        try:
            train_one(with_trial_logger(config, settings.objective), trial_dir, settings.train_path,
                      settings.dev_path, monitor=monitor, gpu_id=settings.gpu_id)
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            raise
        except TuningError as err:
            trial.set_user_attr("error", f"TuningError: {err}"[:2000])
            fatal.append(err)
            trial.study.stop()
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted (KeyboardInterrupt)")
            raise
        except Exception as err:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:2000])
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            raise
        finally:
            if not settings.keep_models:
                for name in ("model-best", "model-last"):
                    shutil.rmtree(trial_dir / name, ignore_errors=True)
        value = monitor.best()
        if value is None:
            trial.set_user_attr("error", "no evaluation took place (training.eval_frequency > training.max_steps?)")
            raise TrialFailure(trial.user_attrs["error"])
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        trial.set_user_attr("best_step", monitor.best_scores.get("step"))
        trial.set_user_attr("scores", {k: v for k, v in monitor.best_scores.items() if k != "step"})
        return value

    def after_trial(study: Any, trial: Any) -> None:
        state = trial.state.name
        secs = trial.user_attrs.get("seconds")
        took = f" [{secs:.1f} s]" if isinstance(secs, (int, float)) else ""
        if state == "COMPLETE":
            best = study.best_trial
            say(f"trial {trial.number} complete: {settings.objective} {trial.value:.4f} "
                f"(best {best.value:.4f}, trial {best.number}){took}")
        elif state == "PRUNED":
            last = max(trial.intermediate_values) if trial.intermediate_values else "?"
            say(f"trial {trial.number} pruned at step {last}{took}")
        else:
            say(f"trial {trial.number} failed: {trial.user_attrs.get('error', 'see the optuna log')}{took}")
        if finished_count(study) >= settings.n_trials:
            study.stop()

    remaining = settings.n_trials - done
    if remaining > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            study.optimize(objective, n_trials=remaining, timeout=settings.timeout, catch=(Exception,),
                           callbacks=[after_trial], gc_after_trial=True)
    else:
        say("the study already has its trials; writing the reports only")
    summary = write_reports(study, output_dir, objective=settings.objective)
    if fatal:
        raise fatal[0]
    summary.update({"storage": redact(url), "worker": worker, "wall_seconds": round(time.perf_counter() - start, 1),
                    "n_trials_target": settings.n_trials, "timeout": settings.timeout})
    write_json_atomic(output_dir / "summary.json", summary)
    return summary


# ----------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------
def trials_table(study: Any) -> Tuple[List[str], List[List[Any]]]:
    """One row per trial (all workers): number, state, value, scores, params, worker, error."""
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({p for t in trials for p in t.params} - {"method", "resampling"})
    header = ["number", "state", "value", "ents_f", "best_step", "seconds", "method", "resampling",
              *param_names, "worker", "error"]
    rows = []
    for t in trials:
        scores = t.user_attrs.get("scores") or {}
        rows.append([
            t.number, t.state.name, t.value if t.value is not None else "",
            scores.get("ents_f", ""), t.user_attrs.get("best_step", ""), t.user_attrs.get("seconds", ""),
            t.params.get("method", t.user_attrs.get("method", "")),
            t.params.get("resampling", t.user_attrs.get("resampling", "")),
            *[t.params.get(p, "") for p in param_names],
            t.user_attrs.get("worker", ""), str(t.user_attrs.get("error", "")).replace("\n", " ")[:200],
        ])
    return header, rows


def _counts(study: Any) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def write_reports(study: Any, output_dir: PathLike, objective: Optional[str] = None) -> Dict[str, Any]:
    """``trials.csv``/``.md``, ``best/config.cfg`` + ``best/trial.json`` and the plots."""
    from optuna.trial import TrialState

    output_dir = Path(output_dir)
    objective = objective or study.user_attrs.get("objective", DEFAULT_OBJECTIVE)
    header, rows = trials_table(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(output_dir / "trials.csv", buffer.getvalue())
    plain = {"number", "state", "method", "resampling", "worker", "error", "best_step"}
    scores = {"value", "ents_f"}

    def cell(name: str, v: Any) -> Any:
        if not isinstance(v, float) or name in plain:
            return v
        if name in scores:
            return f"{v:.4f}"
        return f"{v:.1f}" if name == "seconds" else f"{v:.4g}"

    md_rows = [[cell(h, v) for h, v in zip(header, row)] for row in rows]
    title = f"# Study {study.study_name}: {len(rows)} trials, objective {objective} (dev)\n\n"
    write_text_atomic(output_dir / "trials.md", title + markdown_table(header, md_rows))
    summary: Dict[str, Any] = {"study": study.study_name, "objective": objective, "trials": _counts(study),
                               "files": [str(output_dir / "trials.csv"), str(output_dir / "trials.md")]}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        best_dir = output_dir / "best"
        write_text_atomic(best_dir / "config.cfg", best.user_attrs["config"])
        info = {"number": best.number, "value": best.value, "objective": objective, "params": best.params,
                "scores": best.user_attrs.get("scores"), "best_step": best.user_attrs.get("best_step"),
                "overrides": best.user_attrs.get("overrides"), "worker": best.user_attrs.get("worker")}
        write_json_atomic(best_dir / "trial.json", info)
        summary["best"] = info
        summary["files"] += [str(best_dir / "config.cfg"), str(best_dir / "trial.json")]
    summary["plots"], summary["plot_notes"] = write_plots(study, output_dir / "plots")
    summary["files"] += summary["plots"]
    return summary


def write_plots(study: Any, plot_dir: PathLike) -> Tuple[List[str], List[str]]:
    """Optimisation history and parameter importances as PNG (when they can be drawn)."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState

    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as ovm
    except ImportError:
        return [], ["plots skipped: matplotlib is not installed (pip install matplotlib)"]
    plot_dir = Path(plot_dir)
    written, notes = [], []
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    plots = [("optimization_history.png", ovm.plot_optimization_history, 1),
             ("param_importances.png", ovm.plot_param_importances, 2)]
    for name, draw, needed in plots:
        if n_complete < needed:
            notes.append(f"{name}: needs {needed} complete trials, the study has {n_complete}")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)  # "few trials per regime"
                ax = draw(study)
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            with atomic_path(plot_dir / name) as tmp:
                figure.savefig(tmp, format="png", dpi=100)
            plt.close(figure)
            written.append(str(plot_dir / name))
        except Exception as err:  # e.g. importances on a space with no varying parameter
            notes.append(f"{name}: not drawn ({type(err).__name__}: {err})")
    return written, notes


def report_study(storage: Optional[str], study_name: str, output_dir: PathLike) -> Dict[str, Any]:
    """Write the reports of a stored study (e.g. after workers on several machines)."""
    url = storage_url(storage, output_dir)
    study = load_study(open_storage(url), study_name)
    summary = write_reports(study, output_dir)
    summary["storage"] = redact(url)
    write_json_atomic(Path(output_dir) / "summary.json", summary)
    return summary


# ----------------------------------------------------------------------------
# Multi-seed evaluation of a chosen config
# ----------------------------------------------------------------------------
EVAL_KEYS = ("ents_macro_f", "ents_macro_p", "ents_macro_r", "ents_f", "ents_p", "ents_r")


@dataclass
class SeedJob:
    config_path: str
    train_path: str
    dev_path: str
    test_path: Optional[str]
    output_dir: str
    seed: int
    overrides: Dict[str, Any]
    threads: int = 1
    keep_model: bool = True
    gpu_id: int = -1


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def train_seed(job: SeedJob) -> Dict[str, Any]:
    """Train ``job.config_path`` with one seed and score model-best on dev (and test)."""
    import spacy

    from .training import evaluate_model, read_docs

    _limit_threads(job.threads)
    import_optional_modules()
    start = time.perf_counter()
    out = Path(job.output_dir) / f"seed_{job.seed}"
    if out.exists():
        shutil.rmtree(out)
    overrides = dict(job.overrides)
    overrides["system.seed"] = job.seed
    config = spacy.util.load_config(job.config_path, overrides=overrides, interpolate=False)
    best = train_one(config, out, job.train_path, job.dev_path, gpu_id=job.gpu_id)
    nlp = spacy.load(best)
    result: Dict[str, Any] = {"seed": job.seed, "model": str(best)}
    for split, path in (("dev", job.dev_path), ("test", job.test_path)):
        if path:
            scores = evaluate_model(nlp, read_docs(nlp, path))
            result[split] = {k: scores[k] for k in EVAL_KEYS}
            result[split]["per_type_f"] = {t: s["f"] for t, s in scores["ents_per_type"].items()}
    if not job.keep_model:
        shutil.rmtree(out / "model-best", ignore_errors=True)
    shutil.rmtree(out / "model-last", ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - start, 2)
    write_json_atomic(out / "scores.json", result)
    return result


def mean_sd(values: Sequence[float]) -> Dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def summarise_seeds(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    summary: Dict[str, Any] = {}
    for split in ("dev", "test"):
        runs = [r[split] for r in results if split in r]
        if runs:
            summary[split] = {k: mean_sd([r[k] for r in runs]) for k in EVAL_KEYS}
    return summary


_PRELOAD = ["spacy_nerimb.tuning", "spacy_nerimb.pipeline", "spacy_nerimb.resampling", "spacy_transformers"]


def _pool(workers: int) -> Any:
    """Fresh worker processes. On POSIX a fork server imports spaCy and its plugins once
    (seconds on a loaded CPU) and forks each worker from it; elsewhere they are spawned."""
    import concurrent.futures
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([m for m in _PRELOAD if _importable(m)])
    else:
        context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _storage_seed_worker(args: Tuple[int, str, str, List[int], Dict[str, Any]]) -> int:
    """One local worker of a stored evaluation: takes seeds from Optuna's grid until none is left."""
    import optuna

    index, url, study_name, seeds, job_fields = args
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=open_storage(url), study_name=study_name, direction="maximize",
                                sampler=optuna.samplers.GridSampler({"seed": seeds}, seed=index),
                                load_if_exists=True)
    ran = 0

    def objective(trial: Any) -> float:
        nonlocal ran
        seed = trial.suggest_categorical("seed", seeds)
        trial.set_user_attr("worker", worker_id())
        result = train_seed(SeedJob(seed=seed, **job_fields))
        trial.set_user_attr("result", _jsonable(result))
        ran += 1
        return result["dev"]["ents_macro_f"]

    study.optimize(objective, n_trials=len(seeds), catch=(Exception,))
    return ran


def evaluate_seeds(
    config_path: PathLike, train_path: PathLike, dev_path: PathLike, output_dir: PathLike, *,
    seeds: Sequence[int] = (0, 1, 2), test_path: Optional[PathLike] = None, workers: int = 1,
    overrides: Optional[Dict[str, Any]] = None, storage: Optional[str] = None,
    study_name: Optional[str] = None, keep_models: bool = True, gpu_id: int = -1,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Train ``config_path`` once per seed (``workers`` processes in parallel), score each
    model-best on dev/test and write ``eval.json`` / ``eval.md`` with mean ± sd.

    With ``storage`` and ``study_name`` the seeds are trials of a grid study in that storage,
    so the same command started on several machines shares the seeds out (Optuna's
    ``GridSampler``); the summary then covers every seed any worker finished.
    """
    progress = progress or stderr_printer()
    for label, path in (("CONFIG", config_path), ("--train", train_path), ("--dev", dev_path),
                        ("--test", test_path)):
        if path is not None and not Path(path).exists():
            raise TuningError(f"{label} {path}: file not found")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise TuningError(f"--seeds {seeds}: give distinct seeds")
    workers = max(1, min(int(workers), len(seeds)))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // workers)
    fields = dict(config_path=str(config_path), train_path=str(train_path), dev_path=str(dev_path),
                  test_path=str(test_path) if test_path else None, output_dir=str(output_dir),
                  overrides=dict(overrides or {}), threads=threads, keep_model=keep_models, gpu_id=gpu_id)
    start = time.perf_counter()
    results: List[Dict[str, Any]] = []
    if storage:
        if not study_name:
            raise TuningError("--storage needs --study-name for a shared multi-seed evaluation")
        url = storage_url(storage, output_dir)
        open_storage(url)  # fail early on a bad URL or a missing driver
        progress(f"evaluating seeds {seeds} through study {study_name!r} in {redact(url)} ({workers} local worker(s))")
        with _pool(workers) as pool:
            ran = sum(pool.map(_storage_seed_worker, [(i, url, study_name, seeds, fields) for i in range(workers)]))
        progress(f"this machine ran {ran} seed(s)")
        study = load_study(open_storage(url), study_name)
        by_seed: Dict[int, Dict[str, Any]] = {}
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state.name == "COMPLETE" and t.params.get("seed") in seeds:
                by_seed.setdefault(t.params["seed"], t.user_attrs["result"])
        results = [by_seed[s] for s in seeds if s in by_seed]
    else:
        progress(f"evaluating {config_path} with seeds {seeds} in {workers} process(es)")
        jobs = [SeedJob(seed=s, **fields) for s in seeds]
        if workers == 1:
            for job in jobs:
                results.append(train_seed(job))
                progress(_seed_line(results[-1]))
        else:
            import concurrent.futures

            with _pool(workers) as pool:
                futures = {pool.submit(train_seed, job): job.seed for job in jobs}
                for future in concurrent.futures.as_completed(futures):
                    results.append(future.result())
                    progress(_seed_line(results[-1]))
        results.sort(key=lambda r: r["seed"])
    missing = sorted(set(seeds) - {r["seed"] for r in results})
    out = {"config": str(config_path), "train": str(train_path), "dev": str(dev_path),
           "test": str(test_path) if test_path else None, "seeds": seeds, "missing_seeds": missing,
           "workers": workers, "runs": results, "summary": summarise_seeds(results),
           "wall_seconds": round(time.perf_counter() - start, 1)}
    write_json_atomic(output_dir / "eval.json", out)
    write_text_atomic(output_dir / "eval.md", eval_markdown(out))
    return out


def _seed_line(result: Dict[str, Any]) -> str:
    parts = [f"{split} macro F1 {result[split]['ents_macro_f']:.4f}" for split in ("dev", "test") if split in result]
    return f"seed {result['seed']}: {', '.join(parts)} [{result['seconds']:.1f} s]"


def format_mean_sd(stat: Dict[str, float], scale: float = 100.0) -> str:
    return f"{stat['mean'] * scale:.2f} ± {stat['sd'] * scale:.2f}"


def eval_markdown(result: Dict[str, Any]) -> str:
    lines = [f"# Multi-seed evaluation of {result['config']}\n",
             f"Seeds {result['seeds']}, {result['workers']} process(es), {result['wall_seconds']} s wall. "
             "Strict span scores in %, mean ± sample sd over seeds.\n"]
    if result["missing_seeds"]:
        lines.append(f"**Missing seeds** (failed or not run): {result['missing_seeds']}\n")
    rows = [[split] + [format_mean_sd(stats[k]) for k in EVAL_KEYS]
            for split, stats in result["summary"].items()]
    lines.append(markdown_table(["split", *EVAL_KEYS], rows))
    per_seed = [[r["seed"], *[f"{r[s]['ents_macro_f'] * 100:.2f}" for s in ("dev", "test") if s in r],
                 f"{r['seconds']:.1f}"]
                for r in result["runs"]]
    splits = [s for s in ("dev", "test") if result["runs"] and s in result["runs"][0]]
    lines.append("\n" + markdown_table(["seed", *[f"{s} macro F1" for s in splits], "seconds"], per_seed))
    return "\n".join(lines)
