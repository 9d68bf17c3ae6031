"""A run directory's file names, and how its files are read back.

The one owner of two rules (kept together so that a future run store can take them whole):

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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ablationkit.errors import FormatError, describe_validation
from ablationkit.fsutil import load_json, set_aside
from ablationkit.schema import Judgement, Mode, Plan

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

Model = TypeVar("Model", Plan, Judgement)
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


def _read(path: Path, model: type[Model], paper_id: str | None, judge: str | None) -> Model:
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


class _PlanConfig(BaseModel):
    """What ``run.json`` must say about the plan stage for the run to be resumed or shown."""

    dataset: str
    model: str | None = None
    mode: Mode | None = None
    k: int | None = None
    api_base: str | None = None
    ids: list[str] | None = None
    limit: int | None = None
    papers_root: str | None = None
    params: dict[str, Any] = {}


def _check_manifest(data: Any) -> str | None:
    """Why ``data`` is not a run manifest, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        return 'not a run manifest (no "stages" object)'
    for stage, entry in data["stages"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
            return f"stage {stage!r} is not an object with a config"
    plan = data["stages"].get("plan")
    if plan and plan.get("config"):
        try:
            _PlanConfig.model_validate(plan["config"])
        except ValidationError as exc:
            return describe_validation(exc, "stages.plan.config.")
    return None


def _named_for(path: Path, name: str, what: str, warn: Warn) -> bool | None:
    """True if ``path`` has the name ``name``'s file has now, False if the old one, None (after
    ``warn``) if neither: a file copied or renamed by hand, which is not read."""
    if path.stem == file_stem(name):
        return True
    if path.stem == legacy_stem(name):
        return False
    warn(f"{path}: holds {what}, so its name should be {file_stem(name)}.json; not read")
    return None


# ---------------------------------------------------------------------------- the run


class RunFiles:
    """The files of one run directory: their names, and reading them back validated.

    Methods named ``finished_*`` and ``adopt_legacy`` repair (set aside what does not validate:
    the runner redoes those papers); ``read_*`` methods only read and raise ``DamagedRunFile``.
    """

    REDO_PLAN = "`ablationkit bench plan` on this run sets it aside and plans the paper again"
    REDO_JUDGE = "`ablationkit bench judge` on this run sets it aside and judges the paper again"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ names
    @property
    def manifest_path(self) -> Path:
        return self.root / "run.json"

    @property
    def failures_path(self) -> Path:
        return self.root / "failures.json"

    @property
    def cache_path(self) -> Path:
        return self.root / "lm-cache.sqlite"

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

    # ------------------------------------------------------------------ manifest, failures
    def read_manifest(self) -> dict[str, Any] | None:
        """``run.json``, or None if there is none; ``DamagedRunFile`` if it does not validate."""
        path = self.manifest_path
        if not path.exists() and not path.is_symlink():
            return None
        hint = (
            "it records how the run was planned: `ablationkit bench plan` with the run's "
            "options sets it aside and rebuilds it"
        )
        try:
            data = load_json(_text(path))
        except DamagedRunFile as exc:
            raise DamagedRunFile(path, exc.problem, hint=hint) from None
        except ValueError as exc:
            raise DamagedRunFile(path, f"not JSON ({exc})", hint=hint) from None
        problem = _check_manifest(data)
        if problem:
            raise DamagedRunFile(path, problem, hint=hint)
        manifest: dict[str, Any] = data
        return manifest

    def read_failures(self, *, repair: bool) -> dict[str, dict[str, str]]:
        """``failures.json`` (stage -> paper id -> error); with ``repair`` a damaged one is set
        aside (it only lists the last failures, which the next stage run lists again)."""
        path = self.failures_path
        if not path.exists():
            return {}
        try:
            data = load_json(_text(path))
            valid = isinstance(data, dict) and all(
                isinstance(v, dict) and all(isinstance(e, str) for e in v.values())
                for v in data.values()
            )
            if not valid:
                raise DamagedRunFile(path, "not a failures list (stage -> paper id -> error)")
        except (DamagedRunFile, ValueError) as exc:
            problem = exc.problem if isinstance(exc, DamagedRunFile) else f"not JSON ({exc})"
            if repair:
                set_aside(path, problem, "a new one is written")
                return {}
            raise DamagedRunFile(
                path, problem, hint="the next `ablationkit bench` stage sets it aside"
            ) from None
        failures: dict[str, dict[str, str]] = data
        return failures

    # ------------------------------------------------------------------ the runner's reads
    def finished_plan(self, paper_id: str) -> Plan | None:
        """The plan of ``paper_id`` if it is done; a file there that does not validate or holds
        another paper is set aside (one warning) and None returned: the paper is redone."""
        return self._finished(self.plan_path(paper_id), Plan, paper_id, None)

    def finished_judgement(self, judge: str, paper_id: str) -> Judgement | None:
        """Like ``finished_plan`` for a judge's verdict (which may carry an ``error``)."""
        return self._finished(self.judgement_path(judge, paper_id), Judgement, paper_id, judge)

    def _finished(
        self, path: Path, model: type[Model], paper_id: str, judge: str | None
    ) -> Model | None:
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
