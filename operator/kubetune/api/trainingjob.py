"""The typed TrainingJob: parse a custom resource dict into frozen dataclasses, defaulted and validated.

Decides: which TrainingJobs are acceptable, with every problem named by its field path, and what each field means
once defaulted. The CRD's openAPIV3Schema (:mod:`kubetune.api.crd`) is the source of the types, bounds and defaults;
the cross-field rules below mirror its ``x-kubernetes-validations`` one for one (a test holds them together).

Pure: imports the standard library, PyYAML and the sibling API modules only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kubetune.api import crd
from kubetune.api.quantities import parse_quantity
from kubetune.api.schema import Problem, apply_defaults, validate

Family = Literal["mlp", "cnn", "transformer"]
Dataset = Literal["digits", "mnist5k", "synthetic"]
Mode = Literal["data", "model", "ksync"]
Backend = Literal["auto", "nccl", "gloo"]
Optimizer = Literal["sgd", "adam"]
Precision = Literal["fp32", "bf16"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Pod names are <job>-w<rank>-a<attempt>; keep them within the 63-character DNS label limit.
MAX_NAME_LENGTH = 45


class SpecError(ValueError):
    """A TrainingJob that cannot be accepted; ``problems`` names every field at fault."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class Model:
    family: Family
    depth: int
    width: int


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str


@dataclass(frozen=True)
class Trainer:
    model: Model | None
    dataset: Dataset
    precision: Precision
    compile: bool
    image: str | None
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[EnvVar, ...]

    @property
    def builtin(self) -> bool:
        """True for the built-in trainer, False for bring-your-own."""
        return self.model is not None


@dataclass(frozen=True)
class Hyperparameters:
    learning_rate: float
    batch_size: int
    momentum: float
    weight_decay: float
    optimizer: Optimizer
    epochs: int
    steps: int
    seed: int


@dataclass(frozen=True)
class Parallelism:
    mode: Mode
    workers: int
    gpus_per_worker: int
    backend: Backend
    microbatches: int
    timeout_seconds: int
    k: int | None = None

    @property
    def applied_per_step(self) -> int:
        """ksync: the gradients applied per step (k, default every worker)."""
        return self.k if self.k is not None else self.workers

    @property
    def resolved_backend(self) -> Literal["nccl", "gloo"]:
        """The backend actually used: auto means nccl with GPUs, gloo without."""
        if self.backend == "auto":
            return "nccl" if self.gpus_per_worker > 0 else "gloo"
        return self.backend


@dataclass(frozen=True)
class Toleration:
    key: str | None
    operator: str | None
    value: str | None
    effect: str | None
    toleration_seconds: int | None


@dataclass(frozen=True)
class Checkpoint:
    every_steps: int
    every_seconds: int
    min_interval_seconds: int
    keep: int
    path: str
    persistent_volume_claim: str | None
    resume_from: str | None = None


@dataclass(frozen=True)
class Tracking:
    enabled: bool
    experiment: str | None
    tracking_uri: str | None


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Literal["maximize", "minimize"]
    goal: float | None

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets this objective's goal (False without a goal)."""
        if self.goal is None:
            return False
        return value >= self.goal if self.direction == "maximize" else value <= self.goal


@dataclass(frozen=True)
class Parameter:
    """One dimension of the search space; ``name`` is a TrainingJob field (see :data:`TUNABLE`) or ``env.NAME``."""

    name: str
    type: Literal["float", "int", "categorical"]
    min: float | None
    max: float | None
    log: bool
    step: float | None
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Sampler:
    name: Literal["tpe", "random", "cmaes", "grid", "qmc", "nsga2", "gp"]
    seed: int | None
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Pruner:
    name: Literal["none", "median", "percentile", "successiveHalving", "hyperband"]
    options: Mapping[str, Any]


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True)
class Storage:
    url: str | None
    secret_ref: SecretRef | None


@dataclass(frozen=True)
class Tuning:
    """An Optuna study: ``objectives`` holds one objective (``spec.tuning.objective``) or several."""

    objectives: tuple[Objective, ...]
    parameters: tuple[Parameter, ...]
    sampler: Sampler
    pruner: Pruner
    max_trials: int
    parallel_trials: int
    max_failed_trials: int | None
    timeout_seconds: int | None
    storage: Storage

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


@dataclass(frozen=True)
class Stragglers:
    policy: Literal["none", "spark", "late", "singleFork", "timeout", "migrate", "adaptive"]
    quantile: float
    multiplier: float
    fork_when_done: float | None
    fork_at_seconds: float | None
    after_seconds: float | None
    replicas: int
    original: Literal["keep", "kill"]
    max_extra_cost: float
    max_copies_fraction: float
    factor: float
    restart_seconds: float
    max_moves: int
    hedge: int
    slow_rank_factor: float
    restart_slow_gang: bool


Capacity = Literal["spot", "onDemand"]


@dataclass(frozen=True)
class Spot:
    capacity: Literal["spot", "onDemand", "spotThenOnDemand"]
    provider: Literal["gke", "eks", "karpenter", "aks"]
    node_selectors: Mapping[str, Mapping[str, str]]
    max_preemptions: int | None
    fallback_after_preemptions: int


FailureAction = Literal["Retry", "RelaunchElsewhere", "FailTrial", "FailJob"]


@dataclass(frozen=True)
class FailureRule:
    exit_codes: tuple[int, ...]
    reasons: tuple[str, ...]
    action: FailureAction

    def matches(self, exit_code: int | None, reasons: tuple[str, ...]) -> bool:
        return (exit_code is not None and exit_code in self.exit_codes) or any(r in self.reasons for r in reasons)


@dataclass(frozen=True)
class Resilience:
    stragglers: Stragglers
    spot: Spot
    failure_rules: tuple[FailureRule, ...]


@dataclass(frozen=True)
class TrainingJobSpec:
    trainer: Trainer
    hyperparameters: Hyperparameters
    parallelism: Parallelism
    image: str
    resources: Mapping[str, Mapping[str, int | str]]
    node_selector: Mapping[str, str]
    tolerations: tuple[Toleration, ...]
    affinity: Mapping[str, Any] | None
    checkpoint: Checkpoint
    tracking: Tracking
    backoff_limit: int
    active_deadline_seconds: int | None
    suspend: bool
    queue_name: str | None
    tuning: Tuning | None = None
    resilience: Resilience = field(default_factory=lambda: _resilience({}))

    @property
    def worker_image(self) -> str:
        """The image every worker runs: the bring-your-own image if set, else the built-in trainer's."""
        return self.trainer.image or self.image

    def cpus(self, kind: str) -> float | None:
        """A worker container's CPU ``kind`` (``"requests"`` or ``"limits"``) in cores (``"500m"`` -> 0.5), or None."""
        value = self.resources.get(kind, {}).get("cpu")
        return None if value is None else parse_quantity(value)


@dataclass(frozen=True)
class TrainingJob:
    """A parsed, defaulted and valid TrainingJob."""

    name: str
    namespace: str
    generation: int
    uid: str | None
    spec: TrainingJobSpec
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # The defaulted custom resource (apiVersion, kind, metadata, spec), for round trips.
    manifest: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


# --- cross-field rules: one per x-kubernetes-validations message in the CRD -----------------------------------------

# A rule holds (True), fails at its own path (False), or fails at a more precise path it returns (a string).
Rule = Callable[[Mapping[str, Any]], bool | str]


def _each_parameter(holds: Callable[[Mapping[str, Any]], bool]) -> Rule:
    """A rule over ``spec.tuning.parameters`` that names the first parameter breaking it."""

    def rule(spec: Mapping[str, Any]) -> bool | str:
        for index, parameter in enumerate((spec.get("tuning") or {}).get("parameters", ())):
            if not holds(parameter):
                return f"spec.tuning.parameters[{index}]"
        return True

    return rule


def _unique_parameter_names(spec: Mapping[str, Any]) -> bool | str:
    seen: set[str] = set()
    for index, parameter in enumerate((spec.get("tuning") or {}).get("parameters", ())):
        if parameter["name"] in seen:
            return f"spec.tuning.parameters[{index}].name"
        seen.add(parameter["name"])
    return True


CROSS_FIELD_RULES: dict[str, tuple[str, Rule]] = {
    "exactly one of trainer.model (built-in trainer) or trainer.command (bring-your-own) must be set": (
        "spec.trainer",
        lambda spec: ("model" in spec["trainer"]) != ("command" in spec["trainer"]),
    ),
    "hyperparameters.batchSize must be a multiple of parallelism.workers in data-parallel and ksync modes": (
        "spec.hyperparameters.batchSize",
        lambda spec: (
            spec["parallelism"]["mode"] == "model"
            or spec["hyperparameters"]["batchSize"] % spec["parallelism"]["workers"] == 0
        ),
    ),
    "parallelism.k must not exceed parallelism.workers": (
        "spec.parallelism.k",
        lambda spec: "k" not in spec["parallelism"] or spec["parallelism"]["k"] <= spec["parallelism"]["workers"],
    ),
    "parallelism.backend nccl needs parallelism.gpusPerWorker >= 1": (
        "spec.parallelism.backend",
        lambda spec: spec["parallelism"]["backend"] != "nccl" or spec["parallelism"]["gpusPerWorker"] > 0,
    ),
    "parallelism.workers must not exceed trainer.model.depth + 1 stages in model-parallel mode": (
        "spec.parallelism.workers",
        lambda spec: (
            spec["parallelism"]["mode"] != "model"
            or "model" not in spec["trainer"]
            or spec["trainer"]["model"]["depth"] + 1 >= spec["parallelism"]["workers"]
        ),
    ),
    "tuning needs exactly one of objective or objectives": (
        "spec.tuning",
        lambda spec: "tuning" not in spec or ("objective" in spec["tuning"]) != ("objectives" in spec["tuning"]),
    ),
    "a categorical tuning parameter needs choices": (
        "spec.tuning.parameters",
        _each_parameter(lambda p: p["type"] != "categorical" or "choices" in p),
    ),
    "a float or int tuning parameter needs min < max": (
        "spec.tuning.parameters",
        _each_parameter(lambda p: p["type"] == "categorical" or ("min" in p and "max" in p and p["min"] < p["max"])),
    ),
    "a log-scale tuning parameter needs min > 0": (
        "spec.tuning.parameters",
        _each_parameter(lambda p: not p.get("log") or ("min" in p and p["min"] > 0)),
    ),
    "a tuning parameter cannot have both log and step": (
        "spec.tuning.parameters",
        _each_parameter(lambda p: not p.get("log") or "step" not in p),
    ),
    "tuning parameter names must be unique": ("spec.tuning.parameters", _unique_parameter_names),
    "stragglers.policy singleFork needs exactly one of forkWhenDone or forkAtSeconds": (
        "spec.resilience.stragglers",
        lambda spec: (
            spec["resilience"]["stragglers"]["policy"] != "singleFork"
            or ("forkWhenDone" in spec["resilience"]["stragglers"])
            != ("forkAtSeconds" in spec["resilience"]["stragglers"])
        ),
    ),
    "stragglers.policy timeout needs afterSeconds": (
        "spec.resilience.stragglers.afterSeconds",
        lambda spec: (
            spec["resilience"]["stragglers"]["policy"] != "timeout"
            or "afterSeconds" in spec["resilience"]["stragglers"]
        ),
    ),
    "pruning needs a single objective (Optuna prunes single-objective studies only)": (
        "spec.tuning.pruner.name",
        lambda spec: (
            "tuning" not in spec or "objectives" not in spec["tuning"] or spec["tuning"]["pruner"]["name"] == "none"
        ),
    ),
}

# The TrainingJob fields a tuning parameter may name (besides env.NAME), and where each lives in the spec.
TUNABLE: dict[str, tuple[str, ...]] = {
    **{
        key: ("hyperparameters", key)
        for key in ("learningRate", "batchSize", "momentum", "weightDecay", "optimizer", "epochs", "steps", "seed")
    },
    "model.family": ("trainer", "model", "family"),
    "model.depth": ("trainer", "model", "depth"),
    "model.width": ("trainer", "model", "width"),
}
# A study's trials are child TrainingJobs named <study>-t<number>, replicas <study>-t<number>r<replica>; leave them
# room within MAX_NAME_LENGTH (trial numbers up to 9999, replicas up to 8).
MAX_STUDY_NAME_LENGTH = MAX_NAME_LENGTH - 8


def _cross_field_problems(spec: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for message, (path, holds) in CROSS_FIELD_RULES.items():
        verdict = holds(spec)
        if verdict is not True:
            problems.append(Problem(verdict if isinstance(verdict, str) else path, message))
    return problems


def _failure_rule_problems(spec: Mapping[str, Any]) -> list[Problem]:
    """The CRD's rule on each failurePolicy item (``x-kubernetes-validations`` inside ``items``)."""
    problems = []
    for index, rule in enumerate(spec["resilience"]["failurePolicy"].get("rules", ())):
        if "exitCodes" not in rule and "reasons" not in rule:
            path = f"spec.resilience.failurePolicy.rules[{index}]"
            problems.append(Problem(path, "a failurePolicy rule needs exitCodes or reasons"))
    return problems


def _tuning_problems(spec: Mapping[str, Any], name: str) -> list[Problem]:
    """What the CRD cannot say about a study: parameters that fit the trainer, scalar choices, a short name."""
    tuning = spec.get("tuning")
    if tuning is None:
        return []
    problems = []
    if len(name) > MAX_STUDY_NAME_LENGTH:
        problems.append(
            Problem(
                "metadata.name",
                f"a study's name must have at most {MAX_STUDY_NAME_LENGTH} characters (its trials are "
                f"<name>-t<number>), got {len(name)}",
            )
        )
    builtin = "model" in spec["trainer"]
    for index, parameter in enumerate(tuning["parameters"]):
        path = f"spec.tuning.parameters[{index}]"
        pname, kind = parameter["name"], parameter["type"]
        if pname.startswith("env.") and builtin:
            problems.append(Problem(f"{path}.name", f"{pname}: env.NAME parameters need a bring-your-own trainer"))
        if pname.startswith("model.") and not builtin:
            problems.append(Problem(f"{path}.name", f"{pname}: model parameters need the built-in trainer"))
        for position, choice in enumerate(parameter.get("choices", ())):
            if choice is not None and not isinstance(choice, bool | int | float | str):
                problems.append(
                    Problem(f"{path}.choices[{position}]", f"must be a number, string or boolean, got {choice!r}")
                )
        if kind == "int":
            for key in ("min", "max", "step"):
                value = parameter.get(key)
                if value is not None and not float(value).is_integer():
                    problems.append(Problem(f"{path}.{key}", f"an int parameter needs whole numbers, got {value}"))
        if kind == "categorical":
            extra = [key for key in ("min", "max", "log", "step") if key in parameter]
            if extra:
                problems.append(Problem(f"{path}.{extra[0]}", "a categorical parameter takes choices only"))
        elif "choices" in parameter:
            problems.append(Problem(f"{path}.choices", f"a {kind} parameter takes min/max, not choices"))
    return problems


def _metadata_problems(metadata: Any) -> list[Problem]:
    if not isinstance(metadata, dict):
        return [Problem("metadata", "must be an object with a name")]
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return [Problem("metadata.name", "required field is missing")]
    if not _DNS_LABEL.match(name):
        return [Problem("metadata.name", f"must be a DNS label (lower-case letters, digits, '-'), got {name!r}")]
    if len(name) > MAX_NAME_LENGTH:
        return [Problem("metadata.name", f"must have at most {MAX_NAME_LENGTH} characters, got {len(name)}")]
    return []


# --- parsing ----------------------------------------------------------------------------------------------------------


def parse(obj: Any, *, require_metadata: bool = True) -> TrainingJob:
    """Default, validate and type a TrainingJob custom resource; raises :class:`SpecError` naming every problem."""
    if not isinstance(obj, dict):
        raise SpecError([Problem("", f"a TrainingJob must be a mapping, got {type(obj).__name__}")])
    problems: list[Problem] = []
    if obj.get("apiVersion") != crd.API_VERSION:
        problems.append(Problem("apiVersion", f"must be {crd.API_VERSION!r}, got {obj.get('apiVersion')!r}"))
    if obj.get("kind") != crd.KIND:
        problems.append(Problem("kind", f"must be {crd.KIND!r}, got {obj.get('kind')!r}"))
    if require_metadata:
        problems += _metadata_problems(obj.get("metadata"))
    body = {key: value for key, value in obj.items() if key != "status"}
    defaulted = apply_defaults(body, crd.schema())
    problems += validate(defaulted, crd.schema())
    if problems:
        raise SpecError(problems)
    metadata = defaulted.get("metadata") or {}
    problems = _cross_field_problems(defaulted["spec"])
    problems += _tuning_problems(defaulted["spec"], str(metadata.get("name", "")))
    problems += _failure_rule_problems(defaulted["spec"])
    if problems:
        raise SpecError(problems)
    return TrainingJob(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace") or "default",
        generation=int(metadata.get("generation") or 1),
        uid=metadata.get("uid"),
        spec=_spec(defaulted["spec"]),
        labels=dict(metadata.get("labels") or {}),
        annotations={str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
        manifest=defaulted,
    )


def load(path: str | Path) -> TrainingJob:
    """Parse the single TrainingJob in a YAML file; problems with the file itself are SpecErrors too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError([Problem("", f"cannot read {path}: {error.strerror}")]) from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise SpecError([Problem("", f"{path} is not valid YAML: {error}")]) from None
    if len(documents) != 1:
        raise SpecError([Problem("", f"{path} must hold exactly one TrainingJob, found {len(documents)} documents")])
    return parse(documents[0])


def _spec(spec: Mapping[str, Any]) -> TrainingJobSpec:
    trainer, hyper, par = spec["trainer"], spec["hyperparameters"], spec["parallelism"]
    ckpt, tracking = spec["checkpoint"], spec["tracking"]
    model = trainer.get("model")
    return TrainingJobSpec(
        trainer=Trainer(
            model=Model(model["family"], model["depth"], model["width"]) if model else None,
            dataset=trainer["dataset"],
            precision=trainer["precision"],
            compile=trainer["compile"],
            image=trainer.get("image"),
            command=tuple(trainer.get("command", ())),
            args=tuple(trainer.get("args", ())),
            env=tuple(EnvVar(item["name"], item["value"]) for item in trainer.get("env", ())),
        ),
        hyperparameters=Hyperparameters(
            learning_rate=float(hyper["learningRate"]),
            batch_size=int(hyper["batchSize"]),
            momentum=float(hyper["momentum"]),
            weight_decay=float(hyper["weightDecay"]),
            optimizer=hyper["optimizer"],
            epochs=int(hyper["epochs"]),
            steps=int(hyper["steps"]),
            seed=int(hyper["seed"]),
        ),
        parallelism=Parallelism(
            mode=par["mode"],
            workers=int(par["workers"]),
            gpus_per_worker=int(par["gpusPerWorker"]),
            backend=par["backend"],
            microbatches=int(par["microbatches"]),
            timeout_seconds=int(par["timeoutSeconds"]),
            k=par.get("k"),
        ),
        image=spec["image"],
        resources={kind: dict(values) for kind, values in (spec.get("resources") or {}).items()},
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(
            Toleration(t.get("key"), t.get("operator"), t.get("value"), t.get("effect"), t.get("tolerationSeconds"))
            for t in spec.get("tolerations", ())
        ),
        affinity=spec.get("affinity"),
        checkpoint=Checkpoint(
            every_steps=int(ckpt["everySteps"]),
            every_seconds=int(ckpt["everySeconds"]),
            min_interval_seconds=int(ckpt["minIntervalSeconds"]),
            keep=int(ckpt["keep"]),
            path=ckpt["path"],
            persistent_volume_claim=ckpt.get("persistentVolumeClaim"),
            resume_from=ckpt.get("resumeFrom"),
        ),
        tracking=Tracking(
            enabled=bool(tracking["enabled"]),
            experiment=tracking.get("experiment"),
            tracking_uri=tracking.get("trackingUri"),
        ),
        backoff_limit=int(spec["backoffLimit"]),
        active_deadline_seconds=spec.get("activeDeadlineSeconds"),
        suspend=bool(spec["suspend"]),
        queue_name=spec.get("queueName"),
        tuning=_tuning(spec["tuning"]) if "tuning" in spec else None,
        resilience=_resilience(spec["resilience"]),
    )


def _resilience(raw: Mapping[str, Any]) -> Resilience:
    """The resilience section, defaulted from the CRD (``{}`` gives every default)."""
    raw = apply_defaults(dict(raw), crd.schema()["properties"]["spec"]["properties"]["resilience"])
    st, spot = raw["stragglers"], raw["spot"]
    rules = raw["failurePolicy"].get("rules", ())
    return Resilience(
        stragglers=Stragglers(
            policy=st["policy"],
            quantile=float(st["quantile"]),
            multiplier=float(st["multiplier"]),
            fork_when_done=_number(st.get("forkWhenDone")),
            fork_at_seconds=_number(st.get("forkAtSeconds")),
            after_seconds=_number(st.get("afterSeconds")),
            replicas=int(st["replicas"]),
            original=st["original"],
            max_extra_cost=float(st["maxExtraCost"]),
            max_copies_fraction=float(st["maxCopiesFraction"]),
            factor=float(st["factor"]),
            restart_seconds=float(st["restartSeconds"]),
            max_moves=int(st["maxMoves"]),
            hedge=int(st["hedge"]),
            slow_rank_factor=float(st["slowRankFactor"]),
            restart_slow_gang=bool(st["restartSlowGang"]),
        ),
        spot=Spot(
            capacity=spot["capacity"],
            provider=spot["provider"],
            node_selectors={k: dict(v) for k, v in (spot.get("nodeSelectors") or {}).items()},
            max_preemptions=spot.get("maxPreemptions"),
            fallback_after_preemptions=int(spot["fallbackAfterPreemptions"]),
        ),
        failure_rules=tuple(
            FailureRule(tuple(int(c) for c in r.get("exitCodes", ())), tuple(r.get("reasons", ())), r["action"])
            for r in rules
        ),
    )


def _objective(raw: Mapping[str, Any]) -> Objective:
    goal = raw.get("goal")
    return Objective(raw["metric"], raw["direction"], float(goal) if goal is not None else None)


def _number(value: Any) -> float | None:
    return float(value) if value is not None else None


def _tuning(raw: Mapping[str, Any]) -> Tuning:
    objectives = [raw["objective"]] if "objective" in raw else list(raw["objectives"])
    storage = raw["storage"]
    secret = storage.get("secretRef")
    return Tuning(
        objectives=tuple(_objective(item) for item in objectives),
        parameters=tuple(
            Parameter(
                name=item["name"],
                type=item["type"],
                min=_number(item.get("min")),
                max=_number(item.get("max")),
                log=bool(item.get("log", False)),
                step=_number(item.get("step")),
                choices=tuple(item.get("choices", ())),
            )
            for item in raw["parameters"]
        ),
        sampler=Sampler(raw["sampler"]["name"], raw["sampler"].get("seed"), dict(raw["sampler"].get("options") or {})),
        pruner=Pruner(raw["pruner"]["name"], dict(raw["pruner"].get("options") or {})),
        max_trials=int(raw["maxTrials"]),
        parallel_trials=int(raw["parallelTrials"]),
        max_failed_trials=raw.get("maxFailedTrials"),
        timeout_seconds=raw.get("timeoutSeconds"),
        storage=Storage(storage.get("url"), SecretRef(secret["name"], secret["key"]) if secret else None),
    )
