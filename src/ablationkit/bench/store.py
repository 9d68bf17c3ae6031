"""A run directory, typed: the one module that knows its file names and formats.

Layout (``RunStore`` builds every path; nothing else names a run's files)::

    RUN/run.json                      Manifest: format, version, each stage's config and time
    RUN/plans/<id>.json               schema.Plan, one per paper
    RUN/judgements/<judge>/<id>.json  schema.Judgement, one per paper per judge
    RUN/failures.json                 Failures: stage -> paper id -> error, of each stage's last run
    RUN/scores.json                   Scores: P/R/F1 per judge (``Run.score``)
    RUN/lm-cache.sqlite               every model reply of the run
    RUN/raw/                          model replies that could not be parsed

``read_run(path)`` returns all of it as one ``RunRecord`` (for notebooks, ``bench score`` and
the site); the runner writes through ``write_plan``, ``write_judgement``, ``record_stage`` and
``record_failures``.

Two rules kept here, whole:

* **Names.** ``file_stem`` maps an instance id (or a judge name) to a file name. It is
  injective, also on case-insensitive disks, and bounded in length: ids that are already safe
  lower-case names keep them (``paper-001`` -> ``paper-001.json``, as older versions named
  them); any other id gets a readable slug plus a hash of the exact id (``a b`` ->
  ``a_b-3f2c9a1d.json``), so ``a b``, ``a_b`` and ``a:b`` never share a file.
* **Reading.** A file counts as a finished result only if it validates and holds the id it is
  named for. The runner sets any other file aside (``X.corrupt-<UTC time>``, one warning line)
  and redoes that paper; readers that cannot redo anything (``bench score``, the site) stop
  with one line naming the file.

Files that older versions named ``legacy_stem(id)`` (``safe_name``, which mapped ``a b``,
``a:b`` and ``a_b`` alike) are identical for most ids; for the others the runner moves each
such file to its new name the first time it runs over the run (``adopt_legacy``), if the file
holds that id, and the readers accept the old name when the new one is absent. Where several
ids once shared one old file, the id it holds keeps it and the others are planned again.

**Versions.** ``run.json`` carries ``format`` (``RUN_FORMAT``). Runs of 0.1 have none and the
same layout: they load as they are, and the next stage run rewrites ``run.json`` with it. A
format this version does not know (a newer ablationkit's) stops every command with one line
saying what to do, and is never set aside or rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SerializeAsAny,
    ValidationError,
    field_validator,
)

from ablationkit import __version__
from ablationkit.bench.datasets import Instance, load_dataset
from ablationkit.errors import AblationKitError, FormatError, describe_validation
from ablationkit.fsutil import atomic_write_text, load_json, set_aside
from ablationkit.judge.metrics import JudgeScores, PaperScore, aggregate
from ablationkit.schema import Judgement, Mode, Plan

RUN_FORMAT = 2  # 1: 0.1 (no "format" key); 2: typed manifest, failures count as 0 in scores
MAX_READABLE = 80  # characters of slug; with "-<hash>.json.corrupt-<time>" well under 255
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_HASHED = re.compile(r"-[0-9a-f]{8}$")
# Names Windows reserves whatever the extension: "con.json" cannot be created there.
_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}

Item = TypeVar("Item", Plan, Judgement)
Warn = Callable[[str], None]


def _digest(text: str) -> str:
    """Eight hex digits of the exact id (lone surrogates from JSON included)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def file_stem(name: str) -> str:
    """The file name (without suffix) of an instance id or a judge name in a run.

    Plain when ``name`` is already a safe, lower-case name that cannot be mistaken for a hashed
    one; otherwise ``<slug>-<hash of name>``. Plain names are lower-case and never end in
    ``-<8 hex>``, hashed ones always do, so two ids share a name only if their hashes collide
    (``check_distinct`` refuses that before anything is written).
    """
    readable = _UNSAFE.sub("_", name).strip("_.")[:MAX_READABLE].rstrip("_.") or "x"
    plain = (
        readable == name
        and name == name.lower()
        and not _HASHED.search(name)
        and name.split(".")[0] not in _RESERVED
    )
    return name if plain else f"{readable}-{_digest(name)}"


def legacy_stem(name: str) -> str:
    """The name versions before 0.2 gave ``name`` (not injective); read, never written."""
    return _UNSAFE.sub("_", name).strip("_") or "x"


def check_distinct(ids: Iterable[str], where: str | Path | None = None) -> None:
    """Refuse ids that would share a file (a hash collision, or a crafted id): better no run
    than two papers silently writing one plan."""
    seen: dict[str, str] = {}
    for paper_id in ids:
        stem = file_stem(paper_id).casefold()
        other = seen.setdefault(stem, paper_id)
        if other != paper_id:
            raise FormatError(
                f"ids {other!r} and {paper_id!r} would get the same file name "
                f"{file_stem(paper_id)!r}: rename one of them",
                where=where,
            )


class DamagedRunFile(FormatError):
    """A run file that does not validate, or holds another id than its name says."""

    def __init__(self, path: Path, problem: str, *, hint: str = "", misfiled: bool = False):
        self.path, self.problem, self.misfiled = path, problem, misfiled
        super().__init__(f"{problem}{'; ' + hint if hint else ''}", where=path)


class RunFormatError(FormatError):
    """A run made by an ablationkit whose format this one cannot read; never repaired here."""


# ---------------------------------------------------------------------------- the records


class StageConfig(BaseModel):
    """How a stage was run, as recorded in ``run.json``. Unknown keys are kept (a later
    version's, or a stage this version has no model for)."""

    model_config = ConfigDict(extra="allow")


class PlanStageConfig(StageConfig):
    """The plan stage: the dataset and its extent, and every setting a plan depends on.

    ``RESUMABLE`` fields may differ between runs of the stage over one run directory
    (``--limit``/``--ids`` extend or narrow it, ``papers_root`` only says where the papers
    are, time limits and ``strict`` decide only which papers fail); any other recorded
    setting that differs would mix two experiments in one run. Settings of the planner's
    ``PlanConfig`` (generation, budget, ...) are kept as extra fields (``model_extra``).
    """

    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"ids", "limit", "papers_root", "timeout", "deadline", "concurrency", "strict"}
    )

    dataset: str
    model: str | None = None
    mode: Mode | None = None
    k: int | None = None
    api_base: str | None = None
    ids: list[str] | None = None
    limit: int | None = None
    papers_root: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class JudgeStageConfig(StageConfig):
    """A judge stage (``judge:<name>``): the judge's name, and the top k it judged (None: the
    plans' own)."""

    judge: str
    k: int | None = None
    api_base: str | None = None


def stage_config(stage: str, config: StageConfig | BaseModel | Mapping[str, Any]) -> StageConfig:
    """``config`` as the model of ``stage`` (plan, ``judge:<name>``, or any other)."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    if stage == "plan":
        return PlanStageConfig.model_validate(data)
    if stage.startswith("judge:"):
        return JudgeStageConfig.model_validate({"judge": stage.removeprefix("judge:"), **data})
    return StageConfig.model_validate(data)


class StageRecord(BaseModel):
    """One stage in ``run.json``: its configuration and when it last ran (UNIX time)."""

    config: SerializeAsAny[StageConfig]
    updated: float | None = None


class Manifest(BaseModel):
    """``run.json``. ``format`` absent: written by 0.1 (same layout, read as it is)."""

    format: int = 1
    version: str = "unknown"
    created: float | None = None
    stages: dict[str, StageRecord] = Field(default_factory=dict)

    @field_validator("stages", mode="before")
    @classmethod
    def _typed_stages(cls, value: Any) -> Any:
        """Each stage's config as its own model (plan, judge), whatever the JSON held."""
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for stage, entry in value.items():
            if isinstance(entry, dict) and isinstance(entry.get("config", {}), dict):
                entry = {**entry, "config": stage_config(stage, entry.get("config") or {})}
            out[stage] = entry
        return out

    @classmethod
    def new(cls) -> Manifest:
        return cls(format=RUN_FORMAT, version=__version__, created=time.time())

    @property
    def plan_config(self) -> PlanStageConfig | None:
        """The plan stage's configuration, if the run has been planned."""
        record = self.stages.get("plan")
        return record.config if record and isinstance(record.config, PlanStageConfig) else None

    @property
    def judge_configs(self) -> dict[str, JudgeStageConfig]:
        """Each judge stage's configuration by judge name."""
        return {
            record.config.judge: record.config
            for stage, record in self.stages.items()
            if stage.startswith("judge:") and isinstance(record.config, JudgeStageConfig)
        }


class Failures(RootModel[dict[str, dict[str, str]]]):
    """``failures.json``: per stage, the papers its last run could not do, and why."""

    root: dict[str, dict[str, str]] = Field(default_factory=dict)

    def of(self, stage: str) -> dict[str, str]:
        return self.root.get(stage, {})


class Scores(BaseModel):
    """``scores.json``: what the run planned, and each judge's figures (``JudgeScores``).

    ``plans`` counts the plans there are; every judge's figures also count the papers that have
    none (as 0, listed in its ``plan_failure_ids``). ``warnings`` (not stored): what could not be
    read while scoring, one line each.
    """

    model: str | None = None
    mode: Mode | None = None
    k: int | None = None
    dataset: str | None = None
    plans: int = 0
    plan_cost_usd: float | None = None
    judges: dict[str, JudgeScores] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list, exclude=True)


def planned_instances(config: PlanStageConfig | Mapping[str, Any]) -> list[Instance]:
    """The instances a run's plan stage was given, from its configuration in ``run.json``."""
    if not isinstance(config, PlanStageConfig):
        config = PlanStageConfig.model_validate(dict(config))
    return load_dataset(
        config.dataset,
        mode=config.mode,
        ids=config.ids,
        limit=config.limit,
        papers_root=config.papers_root,
    )


class RunRecord(BaseModel):
    """A whole run, read and validated (``read_run``): what a notebook, ``bench score`` and
    the site work from.

    ``instances`` is the dataset the plan stage was given, when it could be loaded here (None
    otherwise: see ``warnings``); it tells which papers were meant to be planned.
    """

    path: Path
    manifest: Manifest
    plans: dict[str, Plan] = Field(default_factory=dict)
    judgements: dict[str, dict[str, Judgement]] = Field(default_factory=dict)
    failures: Failures = Field(default_factory=Failures)
    scores: Scores | None = None
    instances: dict[str, Instance] | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def plan_config(self) -> PlanStageConfig | None:
        return self.manifest.plan_config

    @property
    def judge_configs(self) -> dict[str, JudgeStageConfig]:
        return self.manifest.judge_configs

    @property
    def judges(self) -> list[str]:
        """Every judge with a stage or a verdict in the run, in the order first seen."""
        names = list(self.manifest.judge_configs)
        return names + [name for name in self.judgements if name not in names]

    def paper_ids(self) -> list[str]:
        """Every paper of the run: planned, meant to be planned, or failed to plan."""
        ids = set(self.plans) | set(self.failures.of("plan")) | set(self.instances or {})
        return sorted(ids)

    def plan_failures(self) -> dict[str, str]:
        """Papers without a plan, and why: the error ``failures.json`` has, else that the
        dataset lists them but no plan file exists (a stage that has not finished them)."""
        errors = self.failures.of("plan")
        return {
            paper_id: errors.get(paper_id, "not planned (no plan file)")
            for paper_id in self.paper_ids()
            if paper_id not in self.plans
        }

    def mode_of(self, paper_id: str) -> Mode:
        """The paper's mode: its plan's, its instance's, or the run's (default author)."""
        if paper_id in self.plans:
            return self.plans[paper_id].mode
        instance = (self.instances or {}).get(paper_id)
        if instance is not None:
            return instance.mode
        config = self.plan_config
        return config.mode if config and config.mode else "author"

    def _targets_of(self, paper_id: str) -> int:
        instance = (self.instances or {}).get(paper_id)
        if instance is not None:
            return len(instance.ground_truth) or instance.target_count or 0
        for verdicts in self.judgements.values():
            verdict = verdicts.get(paper_id)
            if verdict is not None:
                return len(verdict.targets) or verdict.target_count or 0
        return 0

    def score_k(self, judge: str) -> int | None:
        """The k precision divides by for ``judge``: its stage's k, capped at the plans' k."""
        config, judged = self.plan_config, self.judge_configs.get(judge)
        ks = [k for k in (config.k if config else None, judged.k if judged else None) if k]
        return min(ks) if ks else None

    def judge_scores(
        self, judge: str, *, mode: Mode | None = None, resamples: int = 1000, seed: int = 0
    ) -> JudgeScores:
        """``judge``'s figures over the run's papers (of ``mode``), failures counted as 0.

        Counted: every paper the judge gave a verdict on (a failed verdict scores 0), every
        paper without a plan (0), and papers the judge stage failed on without writing a
        verdict (0). Papers with a plan that the judge has not been run on yet are left out.
        """
        k = self.score_k(judge)
        verdicts = self.judgements.get(judge, {})
        stage_errors = self.failures.of(f"judge:{judge}")
        unplanned = self.plan_failures()
        chosen: list[Judgement] = []
        for paper_id in sorted(set(verdicts) | set(stage_errors)):
            if paper_id in unplanned or (mode is not None and self.mode_of(paper_id) != mode):
                continue
            verdict = verdicts.get(paper_id)
            if verdict is None:  # the stage failed on it without a verdict
                verdict = Judgement(
                    judge=judge,
                    paper_id=paper_id,
                    mode=self.mode_of(paper_id),
                    k=k or 0,
                    error=stage_errors[paper_id],
                    target_count=self._targets_of(paper_id) or None,
                )
            chosen.append(verdict)
        failed_plans = [
            PaperScore.failure(paper_id, error, k=k or 0, targets=self._targets_of(paper_id))
            for paper_id, error in unplanned.items()
            if mode is None or self.mode_of(paper_id) == mode
        ]
        return aggregate(chosen, plan_failures=failed_plans, k=k, resamples=resamples, seed=seed)

    def score(self, *, resamples: int = 1000, seed: int = 0) -> Scores:
        """The run's scores, as ``bench score`` writes them to ``scores.json``."""
        config = self.plan_config
        costs = [p.usage.cost_usd for p in self.plans.values() if p.usage]
        return Scores(
            model=config.model if config else None,
            mode=config.mode if config else None,
            k=config.k if config else None,
            dataset=config.dataset if config else None,
            plans=len(self.plans),
            plan_cost_usd=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
            judges={
                judge: self.judge_scores(judge, resamples=resamples, seed=seed)
                for judge in self.judges
            },
            warnings=list(self.warnings),
        )


# ---------------------------------------------------------------------------- validation


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DamagedRunFile(path, "a directory, not a file") from None
    except OSError as exc:
        raise DamagedRunFile(path, f"cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedRunFile(path, f"not UTF-8 (bad byte at offset {exc.start})") from None


def _read(path: Path, model: type[Item], paper_id: str | None, judge: str | None) -> Item:
    """``path`` as ``model``, holding ``paper_id`` (and ``judge``) when given."""
    kind = "plan" if model is Plan else "judgement"
    try:
        item = model.model_validate_json(_text(path))
    except ValidationError as exc:
        raise DamagedRunFile(path, f"not a valid {kind} ({describe_validation(exc)})") from None
    if paper_id is not None and item.paper_id != paper_id:
        raise DamagedRunFile(
            path, f"holds the {kind} of paper {item.paper_id!r}, not {paper_id!r}", misfiled=True
        )
    if judge is not None and isinstance(item, Judgement) and item.judge != judge:
        raise DamagedRunFile(
            path, f"holds judge {item.judge!r}'s verdict, not {judge!r}'s", misfiled=True
        )
    return item


_MIGRATE = (
    "plan again into a new run directory with this version (`ablationkit bench plan DATASET "
    "--run NEW ...`)"
)


def _manifest(path: Path, data: Any) -> Manifest:
    """``data`` (parsed ``run.json``) as a ``Manifest``; ``RunFormatError`` for a format this
    version does not read, ``DamagedRunFile`` (with ``problem`` only) for anything else."""
    if isinstance(data, dict):
        found = data.get("format", 1)
        if not isinstance(found, int) or isinstance(found, bool) or found < 1:
            raise DamagedRunFile(path, f"format {found!r} is not a run format number")
        if found > RUN_FORMAT:
            made_by = data.get("version")
            raise RunFormatError(
                f"run format {found} (written by ablationkit {made_by or 'unknown'}) is newer "
                f"than this version ({__version__}) reads (up to {RUN_FORMAT}): upgrade "
                "ablationkit (`pip install -U ablationkit`), or " + _MIGRATE,
                where=path,
            )
        if "stages" not in data and "version" in data:
            raise RunFormatError(
                f"a run of ablationkit {data['version']} in a layout this version does not "
                f"read (no stages): {_MIGRATE}",
                where=path,
            )
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise DamagedRunFile(path, 'not a run manifest (no "stages" object)')
    for stage, entry in data["stages"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
            raise DamagedRunFile(path, f"stage {stage!r} is not an object with a config")
        try:
            stage_config(stage, entry.get("config") or {})
        except ValidationError as exc:
            raise DamagedRunFile(
                path, describe_validation(exc, f"stages.{stage}.config.")
            ) from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise DamagedRunFile(path, describe_validation(exc)) from None


def _named_for(path: Path, name: str, what: str, warn: Warn) -> bool | None:
    """True if ``path`` has the name ``name``'s file has now, False if the old one, None (after
    ``warn``) if neither: a file copied or renamed by hand, which is not read."""
    if path.stem == file_stem(name):
        return True
    if path.stem == legacy_stem(name):
        return False
    warn(f"{path}: holds {what}, so its name should be {file_stem(name)}.json; not read")
    return None


def _comparable(value: Any) -> Any:
    """Empty and absent settings are the same setting (``params: {}`` of 0.1 runs)."""
    return value if value not in ({}, [], "") else None


# ---------------------------------------------------------------------------- the store


class RunStore:
    """The files of one run directory: their names, and reading and writing them validated.

    Methods named ``finished_*`` and ``adopt_legacy`` repair (set aside what does not validate:
    the runner redoes those papers); ``read_*`` methods only read and raise ``DamagedRunFile``;
    ``write_*`` and ``record_*`` write atomically. Safe to share between threads.
    """

    REDO_PLAN = "`ablationkit bench plan` on this run sets it aside and plans the paper again"
    REDO_JUDGE = "`ablationkit bench judge` on this run sets it aside and judges the paper again"
    REBUILD_MANIFEST = (
        "it records how the run was planned: `ablationkit bench plan` with the run's "
        "options sets it aside and rebuilds it"
    )

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ names
    @property
    def manifest_path(self) -> Path:
        return self.root / "run.json"

    @property
    def failures_path(self) -> Path:
        return self.root / "failures.json"

    @property
    def scores_path(self) -> Path:
        return self.root / "scores.json"

    @property
    def cache_path(self) -> Path:
        return self.root / "lm-cache.sqlite"

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def plans_dir(self) -> Path:
        return self.root / "plans"

    @property
    def judgements_dir(self) -> Path:
        return self.root / "judgements"

    def plan_path(self, paper_id: str) -> Path:
        return self.plans_dir / f"{file_stem(paper_id)}.json"

    def judgement_dir(self, judge: str) -> Path:
        return self.judgements_dir / file_stem(judge)

    def judgement_path(self, judge: str, paper_id: str) -> Path:
        return self.judgement_dir(judge) / f"{file_stem(paper_id)}.json"

    # ------------------------------------------------------------------ manifest
    def read_manifest(self) -> Manifest | None:
        """``run.json``, or None if there is none; ``DamagedRunFile`` if it does not validate,
        ``RunFormatError`` if a version this one does not read wrote it."""
        path = self.manifest_path
        if not path.exists() and not path.is_symlink():
            return None
        try:
            data = load_json(_text(path))
            return _manifest(path, data)
        except DamagedRunFile as exc:
            raise DamagedRunFile(path, exc.problem, hint=self.REBUILD_MANIFEST) from None
        except ValueError as exc:
            raise DamagedRunFile(path, f"not JSON ({exc})", hint=self.REBUILD_MANIFEST) from None

    def manifest(self) -> Manifest:
        """``run.json``, or a new manifest if there is none (nothing is written)."""
        return self.read_manifest() or Manifest.new()

    def plan_config(self) -> PlanStageConfig | None:
        """The plan stage's configuration, or None before the run is planned."""
        return self.manifest().plan_config

    def check_stage(self, stage: str, config: StageConfig | BaseModel | Mapping[str, Any]) -> None:
        """Refuse ``config`` if it would mix two experiments in this run (writes nothing)."""
        self._stage(stage, config, write=False)

    def record_stage(
        self, stage: str, config: StageConfig | BaseModel | Mapping[str, Any]
    ) -> StageConfig:
        """Check ``config`` (``check_stage``), then record it in ``run.json`` as ``stage``'s.

        A damaged ``run.json`` stops every stage but ``plan``: the plan command carries the
        whole configuration, so its run.json is set aside (the bytes are kept beside it) and
        rebuilt, losing nothing. What the old file guarded, that the plans already in the run
        come from this model, the plan stage checks on the plans themselves. The other stages
        stop with one line: they cannot know how the run was planned. Credentials in any
        setting (an ``api_base`` of ``https://user:key@host``) are never written.
        """
        return self._stage(stage, config, write=True)

    def _stage(
        self, stage: str, config: StageConfig | BaseModel | Mapping[str, Any], *, write: bool
    ) -> StageConfig:
        from ablationkit.lm.keys import redact

        data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
        typed = stage_config(stage, json.loads(redact(json.dumps(data))))
        damaged: DamagedRunFile | None = None
        with self._lock:
            try:
                manifest = self.manifest()
            except DamagedRunFile as exc:
                if stage != "plan":
                    raise
                manifest, damaged = Manifest.new(), exc
            previous = manifest.stages.get(stage)
            if stage == "plan" and previous is not None:
                self._check_same_experiment(previous.config, typed)
            if not write:
                return typed
            if damaged is not None:
                set_aside(damaged.path, damaged.problem, "rebuilt from this command's options")
            manifest.format = RUN_FORMAT  # 0.1's layout is this one's: upgraded in place
            manifest.stages[stage] = StageRecord(config=typed, updated=time.time())
            atomic_write_text(self.manifest_path, manifest.model_dump_json(indent=2) + "\n")
            return typed

    def _check_same_experiment(self, previous: StageConfig, config: StageConfig) -> None:
        """Changing what a plan depends on would mix two experiments in one run; changing
        ``--limit`` or ``--ids`` only extends or narrows it. Settings the run did not record
        (added by a later version) are not compared."""
        old, new = previous.model_dump(mode="json"), config.model_dump(mode="json")
        changed = [
            key
            for key in old
            if key not in PlanStageConfig.RESUMABLE
            and _comparable(old[key]) != _comparable(new.get(key))
        ]
        if changed:
            raise AblationKitError(
                f"this run was planned with other {', '.join(changed)} "
                f"({', '.join(f'{c}={old.get(c)!r}' for c in changed)}); "
                "use a new run directory",
                where=self.root,
            )

    # ------------------------------------------------------------------ failures
    def read_failures(self, *, repair: bool) -> Failures:
        """``failures.json`` (stage -> paper id -> error); with ``repair`` a damaged one is set
        aside (it only lists the last failures, which the next stage run lists again)."""
        path = self.failures_path
        if not path.exists():
            return Failures()
        try:
            data = load_json(_text(path))
            try:
                return Failures.model_validate(data)
            except ValidationError:
                raise DamagedRunFile(
                    path, "not a failures list (stage -> paper id -> error)"
                ) from None
        except (DamagedRunFile, ValueError) as exc:
            problem = exc.problem if isinstance(exc, DamagedRunFile) else f"not JSON ({exc})"
            if repair:
                set_aside(path, problem, "a new one is written")
                return Failures()
            raise DamagedRunFile(
                path, problem, hint="the next `ablationkit bench` stage sets it aside"
            ) from None

    def record_failures(self, stage: str, failed: Mapping[str, str]) -> None:
        """Replace ``stage``'s failures in ``failures.json`` by ``failed`` (its last run's)."""
        with self._lock:
            failures = self.read_failures(repair=True)
            failures.root[stage] = dict(failed)
            atomic_write_text(self.failures_path, failures.model_dump_json(indent=2) + "\n")

    # ------------------------------------------------------------------ plans, judgements
    def write_plan(self, plan: Plan) -> Path:
        """Store ``plan`` as its paper's plan (atomically); its path."""
        path = self.plan_path(plan.paper_id)
        atomic_write_text(path, plan.to_json() + "\n")
        return path

    def write_judgement(self, judgement: Judgement) -> Path:
        """Store ``judgement`` as its judge's verdict on its paper (atomically); its path."""
        path = self.judgement_path(judgement.judge, judgement.paper_id)
        atomic_write_text(path, judgement.model_dump_json(indent=2) + "\n")
        return path

    def finished_plan(self, paper_id: str) -> Plan | None:
        """The plan of ``paper_id`` if it is done; a file there that does not validate or holds
        another paper is set aside (one warning) and None returned: the paper is redone."""
        return self._finished(self.plan_path(paper_id), Plan, paper_id, None)

    def finished_judgement(self, judge: str, paper_id: str) -> Judgement | None:
        """Like ``finished_plan`` for a judge's verdict (which may carry an ``error``)."""
        return self._finished(self.judgement_path(judge, paper_id), Judgement, paper_id, judge)

    def _finished(
        self, path: Path, model: type[Item], paper_id: str, judge: str | None
    ) -> Item | None:
        if not path.exists() and not path.is_symlink():
            return None
        try:
            return _read(path, model, paper_id, judge)
        except DamagedRunFile as exc:
            again = "planned" if model is Plan else "judged"
            set_aside(path, exc.problem, f"the paper is {again} again")
            return None

    def adopt_legacy(self, ids: Iterable[str], judge: str | None = None) -> None:
        """Move files named the old way (``legacy_stem``) to their names now, if they hold the
        id they are named for; damaged ones nobody else owns are set aside."""
        ids = list(ids)
        if judge is None:
            model: type[Plan] | type[Judgement] = Plan
            old_dir = new_dir = self.plans_dir
        else:
            model = Judgement
            old_dir, new_dir = self.judgements_dir / legacy_stem(judge), self.judgement_dir(judge)
        if not old_dir.is_dir():
            return
        owned = {f"{file_stem(i)}.json".casefold() for i in ids} if old_dir == new_dir else set()
        for paper_id in ids:
            new = new_dir / f"{file_stem(paper_id)}.json"
            old = old_dir / f"{legacy_stem(paper_id)}.json"
            if old == new or new.exists() or not old.is_file():
                continue
            try:
                _read(old, model, paper_id, judge)  # type: ignore[type-var]
            except DamagedRunFile as exc:
                if not exc.misfiled and old.name.casefold() not in owned:
                    set_aside(old, exc.problem, "the paper is redone")
                continue
            new.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, new)
        if old_dir != new_dir:
            with contextlib.suppress(OSError):
                old_dir.rmdir()  # only when empty: what is left is someone else's

    # ------------------------------------------------------------------ readers (score, site)
    def read_plans(self, warn: Warn) -> list[Plan]:
        """Every plan in the run, by file (score and site); ``DamagedRunFile`` if one does not
        validate; a file named for another id than it holds is skipped with ``warn``."""
        found: dict[str, Plan] = {}
        for path in sorted(self.plans_dir.glob("*.json")) if self.plans_dir.is_dir() else []:
            try:
                plan = _read(path, Plan, None, None)
            except DamagedRunFile as exc:
                raise DamagedRunFile(path, exc.problem, hint=self.REDO_PLAN) from None
            canonical = _named_for(path, plan.paper_id, f"paper {plan.paper_id!r}", warn)
            if canonical or (canonical is False and plan.paper_id not in found):
                found[plan.paper_id] = plan
        return list(found.values())

    def read_judgements(self, warn: Warn) -> dict[str, list[Judgement]]:
        """Every verdict in the run by judge name, read like ``read_plans``."""
        found: dict[tuple[str, str], Judgement] = {}
        root = self.judgements_dir
        for directory in sorted(root.iterdir()) if root.is_dir() else []:
            for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
                try:
                    verdict = _read(path, Judgement, None, None)
                except DamagedRunFile as exc:
                    raise DamagedRunFile(path, exc.problem, hint=self.REDO_JUDGE) from None
                if directory.name not in (file_stem(verdict.judge), legacy_stem(verdict.judge)):
                    warn(f"{path}: holds a verdict of judge {verdict.judge!r}; not read")
                    continue
                key = (verdict.judge, verdict.paper_id)
                what = f"the verdict on paper {verdict.paper_id!r}"
                canonical = _named_for(path, verdict.paper_id, what, warn)
                if canonical or (canonical is False and key not in found):
                    found[key] = verdict
        by_judge: dict[str, list[Judgement]] = {}
        for (judge, _), verdict in sorted(found.items()):
            by_judge.setdefault(judge, []).append(verdict)
        return by_judge

    # ------------------------------------------------------------------ scores
    def write_scores(self, scores: Scores) -> Path:
        """``scores.json`` (the same keys 0.1 wrote, and more)."""
        atomic_write_text(self.scores_path, scores.model_dump_json(indent=2) + "\n")
        return self.scores_path

    def read_scores(self) -> Scores | None:
        """``scores.json``, or None if there is none; ``DamagedRunFile`` if it does not
        validate (``bench score`` rewrites it)."""
        path = self.scores_path
        if not path.exists() and not path.is_symlink():
            return None
        hint = "`ablationkit bench score` on this run rewrites it"
        try:
            return Scores.model_validate_json(_text(path))
        except DamagedRunFile as exc:
            raise DamagedRunFile(path, exc.problem, hint=hint) from None
        except ValidationError as exc:
            problem = f"not the scores of a run ({describe_validation(exc)})"
            raise DamagedRunFile(path, problem, hint=hint) from None

    def score(self, *, resamples: int = 1000) -> Scores:
        """Score the run (``RunRecord.score``) into ``scores.json``; what could not be read is
        in ``Scores.warnings``."""
        scores = self.read().score(resamples=resamples)
        self.write_scores(scores)
        return scores

    # ------------------------------------------------------------------ the whole run
    def read(self, *, dataset: bool = True) -> RunRecord:
        """Everything in the run, validated (``read_run``); reads only, never repairs.

        ``DamagedRunFile`` (one line naming the file) if a plan, a verdict, ``run.json`` or
        ``failures.json`` does not validate; files named for other ids, a damaged
        ``scores.json`` (derived, rewritten by ``bench score``) and a dataset that cannot be
        loaded here become ``warnings``. ``dataset=False`` does not load the dataset.
        """
        manifest = self.read_manifest()
        if manifest is None:
            raise FormatError("not a run directory (no run.json)", where=self.root)
        warnings: list[str] = []
        plans = {plan.paper_id: plan for plan in self.read_plans(warnings.append)}
        judgements = {
            judge: {verdict.paper_id: verdict for verdict in verdicts}
            for judge, verdicts in self.read_judgements(warnings.append).items()
        }
        failures = self.read_failures(repair=False)
        try:
            scores = self.read_scores()
        except DamagedRunFile as exc:
            warnings.append(exc.one_line())
            scores = None
        instances: dict[str, Instance] | None = None
        if dataset and manifest.plan_config is not None:
            try:
                instances = {i.id: i for i in planned_instances(manifest.plan_config)}
            except AblationKitError as exc:
                warnings.append(
                    f"dataset not readable here ({exc.one_line()}): ground truth shown by name "
                    "only, and papers that were never planned are not counted"
                )
        return RunRecord(
            path=self.root,
            manifest=manifest,
            plans=plans,
            judgements=judgements,
            failures=failures,
            scores=scores,
            instances=instances,
            warnings=warnings,
        )


RunFiles = RunStore  # the name of 0.1's reader (``bench.runfiles``)


def read_run(path: str | Path, *, dataset: bool = True) -> RunRecord:
    """The run in ``path`` as one typed ``RunRecord``: manifest and stage configurations,
    plans by paper id, verdicts by judge and paper id, failures, stored scores, and (when it
    can be loaded here; ``dataset=False`` skips it) the dataset.

    >>> run = read_run("runs/local")                     # doctest: +SKIP
    >>> run.plan_config.model, len(run.plans)            # doctest: +SKIP
    >>> run.score().judges["lm:openai/gpt-4o"].macro.f1  # doctest: +SKIP
    """
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise FormatError("not a run directory: it is a file", where=root)
    return RunStore(root).read(dataset=dataset)
