"""What can be changed in the user's experiment: its knobs, found in a config or a ``--help``.

``grid`` asks a model to map each planned ablation to overrides, and only keys found here are
accepted, so this module is what keeps the model from inventing a setting. Two kinds of project:

* **config** (Hydra/OmegaConf style): a YAML file flattened to dotted keys (``model.C``) with
  their values and the comment on their line (the model reads "0 turns augmentation off"
  there); a Hydra ``defaults`` list adds each group (``model=resnet``) with its options and
  the chosen option's keys under the group's name.
* **argparse**: the flags of ``python SCRIPT --help``, run in the project folder with a
  timeout, with their defaults and choices when the help shows them.

The project is the user's own, but the config and script are still looked up inside it through
:mod:`ablationkit.sandbox` (a config named ``../elsewhere.yaml`` or a symlink out is refused).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ablationkit.errors import AblationKitError, FormatError
from ablationkit.sandbox import open_regular, require_file, require_inside, resolve_file

CONFIG_CANDIDATES = (
    "conf/config.yaml",
    "configs/config.yaml",
    "config/config.yaml",
    "config.yaml",
    "conf/config.yml",
    "config.yml",
)
SCRIPT_CANDIDATES = ("train.py", "main.py", "run.py")
SEED_NAMES = ("seed", "random_seed", "random_state", "rng_seed")
MAX_CONFIG_BYTES = 1024 * 1024
MAX_KNOBS = 2000
MAX_HELP_BYTES = 256 * 1024


class ProjectError(AblationKitError):
    """The project has nothing we can vary: no config, no script, or a script whose ``--help``
    fails. Bad input, so exit code 2 like a malformed file."""

    exit_code = 2


@dataclass(frozen=True)
class Knob:
    """One setting of the experiment: its key as overridden (``model.C``, or a flag without
    dashes), its current value, what the project says about it, and its allowed values."""

    key: str
    value: Any = None
    note: str = ""
    choices: tuple[str, ...] = ()
    flag: bool = False  # an argparse switch that takes no value (store_true/false)

    def describe(self) -> str:
        """One line for the prompt and the table: ``model.C = 1.0  (inverse ...)``."""
        text = f"{self.key} = {format_value(self.value)}"
        if self.flag:
            text += "  [switch: true adds the flag]"
        if self.choices:
            text += f"  [one of: {', '.join(self.choices)}]"
        if self.note:
            text += f"  ({self.note})"
        return text


@dataclass
class Experiment:
    """A project's knobs and how they are passed: ``hydra`` (``key=value``) or ``argparse``."""

    project: Path
    style: Literal["hydra", "argparse"]
    knobs: dict[str, Knob]
    config: str | None = None  # relative to the project, with forward slashes
    script: str | None = None
    seed_key: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def command(self) -> str | None:
        """The run command ``execute`` can use as it is, when the script is known."""
        return f"python {shlex.quote(self.script)} {{overrides}}" if self.script else None

    def source(self) -> str:
        """Where the knobs came from, for messages."""
        return self.config or f"python {self.script} --help"


def format_value(value: Any) -> str:
    """A value as the config writes it (``true``, ``null``, ``0.1``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def sample_project_path() -> Path:
    """The tiny real experiment that ships with AblationKit (scikit-learn on its bundled
    digits, ``conf/config.yaml``, ``train.py``, and the ``paper.md`` describing it)."""
    return Path(__file__).resolve().parent.parent / "data" / "sample_project"


# --- discovery ----------------------------------------------------------------------------


def discover(
    project: str | Path,
    *,
    config: str | Path | None = None,
    script: str | None = None,
    help_timeout: float = 30.0,
) -> Experiment:
    """The experiment's knobs: from ``config`` (or the first of ``CONFIG_CANDIDATES`` that
    exists), else from ``script --help`` (or the first of ``SCRIPT_CANDIDATES``)."""
    root = Path(project)
    if not root.is_dir():
        raise ProjectError("not a folder", where=root)
    script_path = _find_script(root, script)
    script_rel = _relative(root, script_path) if script_path else None
    config_path = _find_config(root, config) if config is not None or script is None else None
    if config_path is not None:
        knobs, notes = config_knobs(config_path, root)
        experiment = Experiment(
            project=root.resolve(),
            style="hydra",
            knobs=knobs,
            config=_relative(root, config_path),
            script=script_rel,
            notes=notes,
        )
    elif script_path is not None and script_rel is not None:
        text = run_help(root, script_rel, timeout=help_timeout)
        knobs = help_knobs(text)
        if not knobs:
            raise ProjectError(f"python {script_rel} --help lists no --flags to vary", where=root)
        experiment = Experiment(
            project=root.resolve(), style="argparse", knobs=knobs, script=script_rel
        )
    else:
        raise ProjectError(
            f"no config ({', '.join(CONFIG_CANDIDATES[:4])}) and no training script "
            f"({', '.join(SCRIPT_CANDIDATES)}); give --config or --script",
            where=root,
        )
    experiment.seed_key = find_seed_key(experiment.knobs)
    return experiment


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root.resolve()).as_posix()


def _find_config(root: Path, name: str | Path | None) -> Path | None:
    """The config file, resolved inside the project; an explicit one must exist there.

    A relative name is looked up in the project, then where the user stands
    (``--config demo/conf/config.yaml``); either way it must lie inside the project.
    """
    if name is None:
        for candidate in CONFIG_CANDIDATES:
            found, _ = resolve_file(root, candidate)
            if found is not None:
                return found
        return None
    given = Path(name)
    if not given.is_absolute():
        found, reason = resolve_file(root, given.as_posix())
        if found is not None:
            return found
        if not (Path.cwd() / given).is_file():
            raise ProjectError(f"config {str(name)!r}: {reason}", where=root)
        given = Path.cwd() / given
    path = require_inside(root, given, what="config")
    if not path.is_file():
        raise ProjectError(f"config {str(name)!r}: not a file", where=root)
    return path


def _find_script(root: Path, name: str | None) -> Path | None:
    if name is not None:
        return require_file(root, name, what="script")
    for candidate in SCRIPT_CANDIDATES:
        path, _ = resolve_file(root, candidate)
        if path is not None:
            return path
    return None


def find_seed_key(knobs: dict[str, Knob]) -> str | None:
    """The knob that sets the seed: ``seed`` itself, else the shallowest key named like one."""
    for name in SEED_NAMES:
        if name in knobs:
            return name
    named = [k for k in knobs if k.replace("-", "_").rsplit(".", 1)[-1] in SEED_NAMES]
    return min(named, key=lambda k: (k.count("."), k)) if named else None


# --- configs --------------------------------------------------------------------------------


def read_config_text(path: Path) -> str:
    """A config file's text, bounded (a config is small; a 1 GB file is a mistake)."""
    try:
        with open_regular(path) as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise FormatError(f"cannot read ({exc.strerror or exc})", where=path) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise FormatError(f"larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config", where=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text", where=path) from None


def _load_yaml(path: Path) -> tuple[Any, str]:
    import yaml

    text = read_config_text(path)
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FormatError(f"not valid YAML ({line}{problem})", where=path) from None


def config_knobs(path: Path, root: Path) -> tuple[dict[str, Knob], list[str]]:
    """Every leaf of the YAML config as a dotted key, with the comment on its line; Hydra
    ``defaults`` groups (``- model: resnet``) as choice knobs plus their file's keys."""
    data, text = _load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FormatError("the config is not a mapping of keys", where=path)
    comments = yaml_comments(text)
    knobs: dict[str, Knob] = {}
    notes: list[str] = []
    defaults = data.pop("defaults", None)
    for key, value in flatten(data, where=path):
        _add(knobs, _config_knob(key, value, comments.get(key, "")), path)
    if isinstance(defaults, list):
        for entry in defaults:
            if not (isinstance(entry, dict) and len(entry) == 1):
                continue
            ((group, option),) = entry.items()
            if not isinstance(group, str) or not isinstance(option, str):
                continue
            _add_group(knobs, notes, root, path, group, option)
    return knobs, notes


_OPTIONS_COMMENT = re.compile(r"[\w.-]+(?:\s*\|\s*[\w.-]+)+")


def _config_knob(key: str, value: Any, note: str) -> Knob:
    """A config leaf; a comment that only lists options (``a | b | c``) and includes the
    value is read as its choices, so a made-up option is refused like a made-up key."""
    if isinstance(value, str) and _OPTIONS_COMMENT.fullmatch(note):
        options = tuple(o.strip() for o in note.split("|"))
        if value in options:
            return Knob(key=key, value=value, choices=options)
    return Knob(key=key, value=value, note=note)


def _add(knobs: dict[str, Knob], knob: Knob, path: Path) -> None:
    if len(knobs) >= MAX_KNOBS:
        raise FormatError(f"more than {MAX_KNOBS} keys: too many to map", where=path)
    knobs[knob.key] = knob


def _add_group(
    knobs: dict[str, Knob], notes: list[str], root: Path, path: Path, group: str, option: str
) -> None:
    """A Hydra config group: ``group=option`` picks ``<conf dir>/group/option.yaml``, whose
    keys land under ``group.`` (Hydra's default package)."""
    conf_dir = path.parent
    group_dir = conf_dir / group
    chosen, reason = resolve_file(root, _relative(root, conf_dir) + f"/{group}/{option}.yaml")
    if chosen is None:
        notes.append(f"defaults group {group}: {group}/{option}.yaml {reason}; not listed")
        return
    options = tuple(
        sorted(
            p.stem
            for p in group_dir.glob("*.yaml")
            if resolve_file(root, _relative(root, p))[0] is not None
        )
    )
    _add(knobs, Knob(key=group, value=option, note="config group", choices=options), path)
    data, text = _load_yaml(chosen)
    if isinstance(data, dict):
        data.pop("defaults", None)
        comments = yaml_comments(text)
        for key, value in flatten(data, where=chosen):
            _add(knobs, _config_knob(f"{group}.{key}", value, comments.get(key, "")), path)


def flatten(data: dict[str, Any], *, where: Path, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, leaf value)`` pairs; lists are leaves. Iterative and bounded: a YAML
    alias bomb (anchors referencing anchors) shares nodes, and walking it must stop early."""
    stack: list[tuple[str, Any]] = [(prefix, data)]
    visited = 0
    out: list[tuple[str, Any]] = []
    while stack:
        key, value = stack.pop()
        visited += 1
        if visited > MAX_KNOBS * 4:
            raise FormatError(f"more than {MAX_KNOBS} keys: too many to map", where=where)
        if isinstance(value, dict):
            if not value and key:
                out.append((key, None))
            for child in reversed(list(value)):
                stack.append((f"{key}.{child}" if key else str(child), value[child]))
        else:
            out.append((key, value))
    yield from out


_YAML_LINE = re.compile(r"^( *)(?:- )?([^#:\s][^#:]*?)\s*:(?:\s+(.*?))?\s*$")


def yaml_comments(text: str) -> dict[str, str]:
    """The comment at the end of each key's line, by dotted key (PyYAML drops comments, and
    they are often the only place a config says what ``0`` means)."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    for line in text.splitlines():
        body, comment = _split_comment(line)
        match = _YAML_LINE.match(body)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2).strip().strip("'\"")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        if comment:
            comments[dotted] = comment[:200]
        if not (match.group(3) or "").strip():
            stack.append((indent, key))
    return comments


def _split_comment(line: str) -> tuple[str, str]:
    """``line`` without its ``# comment`` (outside quotes), and the comment's text."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


# --- argparse scripts -----------------------------------------------------------------------


def run_help(root: Path, script: str, *, timeout: float = 30.0) -> str:
    """``python SCRIPT --help`` in the project folder (it is the user's own code), bounded in
    time and output; a failure is one line with the end of its stderr.

    It runs in a session of its own, and on a timeout the whole process group is ended: a
    script that started a child (a launcher, a data server) must not leave it running.
    Output goes to unnamed temporary files, so a script that prints without end fills no
    memory here; only the first ``MAX_HELP_BYTES`` are read.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(
                [sys.executable, script, "--help"],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, "COLUMNS": "200"},
                start_new_session=True,
            )
        except OSError as exc:
            raise ProjectError(f"cannot run python {script} --help ({exc})", where=root) from None
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_group(process)
            raise ProjectError(
                f"python {script} --help did not finish in {timeout:g} s", where=root
            ) from None
        _end_group(process)  # children it left behind
        out.seek(0)
        text = out.read(MAX_HELP_BYTES).decode("utf-8", "replace")
        if returncode != 0:
            err.seek(max(0, err.seek(0, os.SEEK_END) - 4096))
            lines = err.read().decode("utf-8", "replace").strip().splitlines()
            raise ProjectError(
                f"python {script} --help exited with {returncode}: "
                f"{(lines[-1] if lines else 'no output')[:200]}",
                where=root,
            )
    return text


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the process's group (itself and the children it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


_OPTION = re.compile(
    r"^ {1,12}(?:-[A-Za-z0-9](?: [^ ,]+)?, )?--(?P<name>[A-Za-z0-9][\w.-]*)"
    r"(?:[ =](?P<meta>\{[^}]*\}|[^ ]+))?(?: {2,}(?P<help>.*))?$"
)
_DEFAULT = re.compile(r"\(default:\s*(.*?)\)\s*$")


def help_knobs(text: str) -> dict[str, Knob]:
    """The ``--flags`` of an argparse help text, with their defaults (shown by
    ``ArgumentDefaultsHelpFormatter`` or written in the help) and ``{a,b}`` choices."""
    entries: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None  # the option whose help may continue below it
    for line in text.splitlines():
        match = _OPTION.match(line)
        if match:
            current = {
                "name": match.group("name"),
                "meta": match.group("meta"),
                "help": (match.group("help") or "").strip(),
            }
            entries.append(current)
        elif current is not None and line.startswith("   ") and not line.lstrip().startswith("-"):
            current["help"] = (current["help"] + " " + line.strip()).strip()
        else:  # a section title, a blank line, a positional or short-only option
            current = None
    knobs: dict[str, Knob] = {}
    for entry in entries:
        name = entry["name"]
        if name in ("help", "version") or len(knobs) >= MAX_KNOBS:
            continue
        meta, help_text = entry["meta"], " ".join(entry["help"].split())
        default_match = _DEFAULT.search(help_text)
        note = _DEFAULT.sub("", help_text).strip()[:200]
        choices: tuple[str, ...] = ()
        if meta and meta.startswith("{"):
            choices = tuple(c.strip() for c in meta[1:-1].split(",") if c.strip())
        value: Any = parse_scalar(default_match.group(1)) if default_match else None
        flag = meta is None
        if flag and value is None:
            value = False
        knobs[name] = Knob(key=name, value=value, note=note, choices=choices, flag=flag)
    return knobs


def parse_scalar(text: str) -> Any:
    """A default as argparse prints it (Python's repr-ish ``None``/``True``/``0.1``/``'x'``)."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            pass
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        return stripped[1:-1]
    return stripped
