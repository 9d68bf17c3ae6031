"""Attacks on a run's files and on the files the bench, site and convert commands read.

Each test is one attack and its outcome. The rule under test: a run file that does not validate
is set aside (``X.corrupt-<UTC time>``) with one warning line and its paper is redone; a command
that cannot repair what it reads (``bench score``, ``site``, ``convert``) says so in one line
naming the file, with exit code 2 and no traceback. Commands go through the installed console
script, as a user runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from ablationkit.bench import Run, load_dataset, make_judge, runfiles
from ablationkit.bench.runfiles import file_stem, legacy_stem
from ablationkit.errors import AblationKitError, FormatError
from ablationkit.fsutil import DamagedFileWarning
from ablationkit.lm.cache import CompletionCache
from ablationkit.lm.types import Completion
from ablationkit.site import build_site, load_run
from ablationkit.testing import FakeLLMServer
from fakes import respond, tiny_dataset

TRICKY_IDS = ["a b", "a_b", "a:b", "A", "a", "x" * 300, ".hidden", "..", "é", "lm:m"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=respond) as fake:
        yield fake


def cli_run(cli: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [cli, *map(str, args)], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command failed with exit code 2 and exactly one line on stderr, naming ``needles``."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def warning_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def dataset_of(path: Path, ids: list[str]) -> Path:
    rows = [
        {
            "id": paper_id,
            "title": f"Paper {n}",
            "text": f"# Paper {n}\n\n## 1 Method\n\nA gate, variant {n}.\n",
            "ground_truth": [{"name": "Gate", "ablated_part": "gate", "action": "REMOVE"}],
        }
        for n, paper_id in enumerate(ids)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, server: FakeLLMServer) -> Path:
    """A run of three toy papers, planned and judged through the fake server, once."""
    root = tmp_path_factory.mktemp("template")
    dataset = tiny_dataset(root / "data.jsonl", 3)
    run = Run(root / "run")
    assert len(run.plan(dataset, model="m", api_base=server.url, k=2).done) == 3
    assert len(run.judge(make_judge(["m"], run.client, server.url)).done) == 3
    run.client.close()
    cache = root / "run" / "lm-cache.sqlite"
    with closing(sqlite3.connect(cache)) as db:  # every reply into the file, no log beside it
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for leftover in cache.parent.glob("lm-cache.sqlite-*"):
        leftover.unlink()
    return root


def planned(tmp_path: Path, template: Path) -> Path:
    """A copy of the template run in ``tmp_path/run``, its dataset in ``tmp_path``."""
    shutil.copy(template / "data.jsonl", tmp_path / "data.jsonl")
    shutil.copytree(template / "run", tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "run.json").read_text("utf-8"))
    manifest["stages"]["plan"]["config"]["dataset"] = str(tmp_path / "data.jsonl")
    (tmp_path / "run" / "run.json").write_text(json.dumps(manifest), "utf-8")
    return tmp_path / "run"


def bench_plan(cli: str, run_dir: Path, server: FakeLLMServer, *extra: str) -> list[str]:
    dataset = run_dir.parent / "data.jsonl"
    common = ["--model", "m", "--api-base", server.url, "-k", "2", *extra]
    return [cli, "bench", "plan", str(dataset), "--run", str(run_dir), *common]


# ---------------------------------------------------------------------------- run ids (3)


def test_ids_that_slug_alike_are_stored_in_distinct_files() -> None:
    stems = [file_stem(i) for i in TRICKY_IDS]
    assert len({s.casefold() for s in stems}) == len(TRICKY_IDS)  # case-insensitive disks too
    assert file_stem("a_b") == "a_b" and file_stem("a b").startswith("a_b-")
    assert file_stem("paper-001") == legacy_stem("paper-001") == "paper-001"  # old runs: same name
    assert all(len(s) <= 96 and not s.startswith(".") for s in stems)


def test_an_id_crafted_to_look_like_a_hashed_name_gets_its_own_name() -> None:
    crafted = file_stem("a b")  # "a_b-<hash of 'a b'>" as an id of its own
    assert file_stem(crafted) != crafted


def test_ids_whose_names_would_still_collide_are_refused_before_any_call(
    tmp_path: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runfiles, "_digest", lambda text: "0" * 8)
    dataset = dataset_of(tmp_path / "data.jsonl", ["a b", "a:b"])
    asked = len(server.requests)
    with pytest.raises(AblationKitError, match=r"'a b' and 'a:b'.*same file name"):
        Run(tmp_path / "run").plan(dataset, model="m", api_base=server.url)
    assert len(server.requests) == asked


def test_colliding_ids_all_get_planned_and_a_rerun_skips_them(
    cli: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    dataset = dataset_of(tmp_path / "data.jsonl", TRICKY_IDS)
    run_dir = tmp_path / "run"
    first = Run(run_dir).plan(dataset, model="m", api_base=server.url, k=2)
    assert sorted(first.done) == sorted(TRICKY_IDS)
    stored = [json.loads(p.read_text("utf-8"))["paper_id"] for p in run_dir.glob("plans/*.json")]
    assert sorted(stored) == sorted(TRICKY_IDS)
    again = cli_run(*bench_plan(cli, run_dir, server))
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert f"0 done, {len(TRICKY_IDS)} already done" in again.stderr, again.stderr


def test_a_plan_file_holding_another_paper_is_set_aside_and_redone(
    tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    wrong = run_dir / "plans" / "paper-001.json"
    shutil.copy(run_dir / "plans" / "paper-002.json", wrong)
    with pytest.warns(DamagedFileWarning, match=r"paper-001\.json: .*'paper-002'.*set aside"):
        report = Run(run_dir).plan(tmp_path / "data.jsonl", model="m", api_base=server.url, k=2)
    assert report.done == ["paper-001"] and len(report.skipped) == 2
    assert json.loads(wrong.read_text("utf-8"))["paper_id"] == "paper-001"
    assert len(list((run_dir / "plans").glob("paper-001.json.corrupt-*"))) == 1


def test_duplicate_ids_in_a_dataset_name_the_id_and_the_lines(cli: str, tmp_path: Path) -> None:
    dataset = dataset_of(tmp_path / "data.jsonl", ["a", "b", "a"])
    result = cli_run(cli, "bench", "plan", dataset, "--run", tmp_path / "r", "--dry-run")
    one_line_error(result, str(dataset), "duplicate instance id 'a'", "lines 1 and 3")


def test_old_runs_keep_their_plans_and_judgements_under_the_old_names(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    dataset = dataset_of(tmp_path / "data.jsonl", ["Paper-A", "a b", "plain"])
    run = Run(tmp_path / "run")
    run.plan(dataset, model="m", api_base=server.url, k=2)
    judge = make_judge(["m"], run.client, server.url)
    run.judge(judge)
    # lay the run out as the old naming did: safe_name(id), safe_name(judge name)
    for old_id in ("Paper-A", "a b", "plain"):
        plan = run.dir / "plans" / f"{file_stem(old_id)}.json"
        plan.rename(run.dir / "plans" / f"{legacy_stem(old_id)}.json")
    new_dir = run.dir / "judgements" / file_stem(judge.name)
    old_dir = run.dir / "judgements" / legacy_stem(judge.name)
    new_dir.rename(old_dir)
    for verdict in old_dir.iterdir():
        paper_id = json.loads(verdict.read_text("utf-8"))["paper_id"]
        verdict.rename(old_dir / f"{legacy_stem(paper_id)}.json")
    shown = load_run(run.dir)  # the site reads an old run as it is (it never moves files)
    assert [len(p.judgements) for p in shown.papers] == [1, 1, 1] and not shown.warnings
    again = Run(tmp_path / "run")
    assert len(again.plan(dataset, model="m", api_base=server.url, k=2).skipped) == 3
    assert len(again.judge(make_judge(["m"], again.client, server.url)).skipped) == 3
    assert (run.dir / "plans" / f"{file_stem('a b')}.json").is_file() and not old_dir.exists()
    assert again.score(resamples=0).plans == 3


# ---------------------------------------------------------------------- damaged files (4)


@pytest.mark.parametrize(
    "damage",
    [b'{"planner": "lm-planner", "model": "m", "paper_id": "paper-001", "abl', b"\xff\xfe{}", b""],
    ids=["truncated", "not-utf8", "empty"],
)
def test_a_damaged_plan_is_set_aside_and_redone(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path, damage: bytes
) -> None:
    run_dir = planned(tmp_path, template)
    (run_dir / "plans" / "paper-001.json").write_bytes(damage)
    result = cli_run(*bench_plan(cli, run_dir, server))
    assert result.returncode == 0, result.stderr
    [warning] = warning_lines(result)
    assert "paper-001.json" in warning and "set aside" in warning
    assert "plan: 1 done, 2 already done" in result.stderr
    [aside] = (run_dir / "plans").glob("paper-001.json.corrupt-*")
    assert aside.read_bytes() == damage
    assert json.loads((run_dir / "plans" / "paper-001.json").read_text("utf-8"))["ablations"]


def test_a_damaged_judgement_is_set_aside_and_judged_again(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    [verdict] = (run_dir / "judgements").glob("*/paper-002.json")
    verdict.write_text('{"judge": "lm:m", "paper_id": "paper-002", "mo', "utf-8")
    result = cli_run(
        cli, "bench", "judge", "--run", run_dir, "--judge", "m", "--api-base", server.url
    )
    assert result.returncode == 0, result.stderr
    [warning] = warning_lines(result)
    assert "paper-002.json" in warning and "set aside" in warning
    assert "1 done, 2 already done" in result.stderr
    assert json.loads(verdict.read_text("utf-8"))["paper_id"] == "paper-002"


def test_a_corrupt_run_json_is_set_aside_and_rebuilt_by_bench_plan(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    (run_dir / "run.json").write_text('{"version": "0.1.0", "stages": {"plan": {"con', "utf-8")
    asked = len(server.requests)
    result = cli_run(*bench_plan(cli, run_dir, server))
    assert result.returncode == 0, result.stderr
    [warning] = warning_lines(result)
    assert "run.json" in warning and "set aside" in warning and "rebuilt" in warning
    assert "0 done, 3 already done" in result.stderr and len(server.requests) == asked
    config = json.loads((run_dir / "run.json").read_text("utf-8"))["stages"]["plan"]["config"]
    assert config["model"] == "m"
    assert len(list(run_dir.glob("run.json.corrupt-*"))) == 1


def test_a_rebuilt_run_json_still_refuses_plans_of_another_model(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    (run_dir / "run.json").write_bytes(b"\x00garbage")
    result = cli_run(*bench_plan(cli, run_dir, server, "--model", "other"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "planned with model 'm'" in result.stderr and "paper-000.json" in result.stderr
    assert (run_dir / "run.json").read_bytes() == b"\x00garbage"  # refused: nothing rewritten


@pytest.mark.parametrize("command", ["judge", "score", "site"])
def test_a_corrupt_run_json_stops_judge_score_and_site_in_one_line(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path, command: str
) -> None:
    run_dir = planned(tmp_path, template)
    (run_dir / "run.json").write_text('{"stages": [1, 2]}', "utf-8")
    commands: dict[str, list[str | Path]] = {
        "judge": ["bench", "judge", "--run", run_dir, "--judge", "m", "--api-base", server.url],
        "score": ["bench", "score", "--run", run_dir],
        "site": ["site", run_dir, "-o", tmp_path / "site"],
    }
    args = commands[command]
    one_line_error(cli_run(cli, *args), str(run_dir / "run.json"))
    assert not list(run_dir.glob("run.json.corrupt-*"))  # nothing moved: it cannot be rebuilt here


def test_a_corrupt_failures_json_is_set_aside_by_bench_plan_and_stops_site(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    (run_dir / "failures.json").write_text('{"plan": {"paper-001": ', "utf-8")
    site = cli_run(cli, "site", run_dir, "-o", tmp_path / "site")
    one_line_error(site, str(run_dir / "failures.json"))
    result = cli_run(*bench_plan(cli, run_dir, server))
    assert result.returncode == 0, result.stderr
    [warning] = warning_lines(result)
    assert "failures.json" in warning and "set aside" in warning
    assert json.loads((run_dir / "failures.json").read_text("utf-8")) == {"plan": {}}


def _truncated_cache(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _wrong_schema_cache(path: Path) -> None:
    path.unlink()
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE completions (id INTEGER, reply BLOB)")
        db.commit()


@pytest.mark.parametrize(
    "damage",
    [lambda p: p.write_bytes(os.urandom(4096)), _truncated_cache],
    ids=["garbage", "truncated"],
)
def test_a_damaged_cache_is_set_aside_and_rebuilt(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path, damage: object
) -> None:
    run_dir = planned(tmp_path, template)
    more = tiny_dataset(tmp_path / "more.jsonl", 5).read_text("utf-8").splitlines(keepends=True)
    with (tmp_path / "data.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(more[3:])  # two papers more to plan, through the new cache
    cache = run_dir / "lm-cache.sqlite"
    damage(cache)  # type: ignore[operator]
    result = cli_run(*bench_plan(cli, run_dir, server))
    assert result.returncode == 0, result.stderr
    [warning] = warning_lines(result)
    assert "lm-cache.sqlite" in warning and "set aside" in warning
    assert "2 done, 3 already done" in result.stderr
    with closing(sqlite3.connect(cache)) as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 2
    assert len(list(cache.parent.glob("lm-cache.sqlite.corrupt-*"))) == 1


@pytest.mark.parametrize(
    "damage",
    [lambda p: p.write_bytes(b"SQLite format 3\x00" + os.urandom(600)), _wrong_schema_cache],
    ids=["bad-header", "wrong-schema"],
)
def test_a_damaged_cache_file_is_replaced_by_a_working_one(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "cache.sqlite"
    CompletionCache(path).close()
    damage(path)  # type: ignore[operator]
    with pytest.warns(DamagedFileWarning, match=r"cache\.sqlite: damaged cache .*set aside"):
        cache = CompletionCache(path)
    cache.put_later("k", Completion(text="reply", model="m"))
    assert len(cache) == 1 and cache.get("k") is not None
    cache.close()
    assert len(list(tmp_path.glob("cache.sqlite.corrupt-*"))) == 1


def test_an_unusable_cache_location_keeps_replies_in_memory(tmp_path: Path) -> None:
    (tmp_path / "cache.sqlite").mkdir()  # a folder where the file should be
    with pytest.warns(DamagedFileWarning, match="replies are kept in memory only"):
        cache = CompletionCache(tmp_path / "cache.sqlite")
    cache.put_later("k", Completion(text="reply", model="m"))
    assert cache.get("k") is not None and len(cache) == 1


@pytest.mark.parametrize("damage", [b'{"planner": "lm-pl', b"\xc3\x28{}"], ids=["trunc", "utf8"])
def test_a_damaged_plan_stops_bench_score_in_one_line(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path, damage: bytes
) -> None:
    run_dir = planned(tmp_path, template)
    (run_dir / "plans" / "paper-000.json").write_bytes(damage)
    one_line_error(
        cli_run(cli, "bench", "score", "--run", run_dir), str(run_dir / "plans" / "paper-000.json")
    )


def test_a_run_directory_that_is_a_file_is_one_line(cli: str, tmp_path: Path) -> None:
    (tmp_path / "run").write_text("not a folder", "utf-8")
    one_line_error(cli_run(cli, "bench", "score", "--run", tmp_path / "run"), "run")


# ------------------------------------------------------------- tracebacks -> one line (6)


def _deep(depth: int) -> str:
    return '{"ablations": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    "text",
    [_deep(100_000), "[" * 995 + "]" * 995, "[" + '{"name": ' * 990 + "1" + "}" * 990 + "]"],
    ids=["plan-json", "list", "objects"],
)
def test_deeply_nested_json_in_convert_is_one_line(cli: str, tmp_path: Path, text: str) -> None:
    source = tmp_path / "deep.json"
    source.write_text(text, "utf-8")
    one_line_error(cli_run(cli, "convert", source, "--to", "md", "--mode", "author"), str(source))


def test_deeply_nested_json_in_a_dataset_line_names_the_line(cli: str, tmp_path: Path) -> None:
    dataset = dataset_of(tmp_path / "data.jsonl", ["a"])
    with dataset.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "b", "text": "x", "ground_truth": ' + "[" * 5000 + "]" * 5000 + "}\n")
    result = cli_run(cli, "bench", "plan", dataset, "--run", tmp_path / "r", "--dry-run")
    one_line_error(result, str(dataset), "line 2", "nested")


def test_a_non_utf8_dataset_line_names_the_line(cli: str, tmp_path: Path) -> None:
    dataset = dataset_of(tmp_path / "data.jsonl", ["a", "b"])
    with dataset.open("ab") as handle:
        handle.write(b'{"id": "c", "title": "caf\xe9", "text": "x"}\n')
    result = cli_run(cli, "bench", "plan", dataset, "--run", tmp_path / "r", "--dry-run")
    one_line_error(result, str(dataset), "line 3", "UTF-8")


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("meta.json", b"[" * 5000, "meta.json: not a JSON object (nested deeper"),
        ("meta.json", b"\xff", "meta.json: not a JSON object"),
        ("ground_truth.jsonl", b'{"name": "a"}\n\xff\n', "ground_truth.jsonl: line 1: not an"),
    ],
    ids=["deep-meta", "binary-meta", "bad-ablation"],
)
def test_a_broken_paper_folder_file_is_named_in_one_error(
    tmp_path: Path, name: str, content: bytes, needle: str
) -> None:
    folder = tmp_path / "papers" / "p1"
    folder.mkdir(parents=True)
    (folder / "paper.md").write_text("# P\n\n## Method\n\nA gate.\n", "utf-8")
    (folder / "ground_truth.jsonl").write_text(
        '{"name": "G", "ablated_part": "g", "action": "REMOVE"}\n', "utf-8"
    )
    (folder / name).write_bytes(content)
    with pytest.raises(FormatError) as caught:
        load_dataset(tmp_path / "papers")
    assert needle in caught.value.one_line()


def test_a_non_utf8_line_in_a_paper_folders_ground_truth_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "papers" / "p1"
    folder.mkdir(parents=True)
    good = b'{"name": "G", "ablated_part": "g", "action": "REMOVE"}\n'
    (folder / "ground_truth.jsonl").write_bytes(good + b"\xff\n")
    with pytest.raises(FormatError, match=r"ground_truth\.jsonl: line 2: not UTF-8"):
        load_dataset(tmp_path / "papers")


def test_site_refuses_a_symlinked_output_folder(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "index.html").write_text("mine", "utf-8")
    (precious / ".ablationkit-site").write_text("planted", "utf-8")
    (tmp_path / "site").symlink_to(precious)
    one_line_error(cli_run(cli, "site", run_dir, "-o", tmp_path / "site"), "symbolic link")
    assert (precious / "index.html").read_text("utf-8") == "mine"


def test_site_output_that_is_a_file_is_one_line(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    (tmp_path / "site").write_text("a file", "utf-8")
    one_line_error(cli_run(cli, "site", run_dir, "-o", tmp_path / "site"), "not a directory")
    one_line_error(cli_run(cli, "site", run_dir, "-o", tmp_path / "site" / "sub"))


def test_site_never_follows_symlinks_planted_inside_its_own_output(
    cli: str, tmp_path: Path, server: FakeLLMServer, template: Path
) -> None:
    run_dir = planned(tmp_path, template)
    out = tmp_path / "site"
    build_site([run_dir], out, resamples=0)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("keep", "utf-8")
    shutil.rmtree(out / "assets")
    (out / "assets").symlink_to(foreign)
    shutil.rmtree(out / "runs")
    (out / "runs").symlink_to(foreign)
    result = cli_run(cli, "site", run_dir, "-o", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]
    assert not (out / "assets").is_symlink() and (out / "assets" / "site.css").is_file()


def test_site_pages_of_ids_that_slug_alike_are_distinct(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    dataset = dataset_of(tmp_path / "data.jsonl", ["a b", "a_b", "A", "a"])
    run = Run(tmp_path / "run")
    run.plan(dataset, model="m", api_base=server.url, k=2)
    report = build_site([tmp_path / "run"], tmp_path / "site", resamples=0)
    pages = {p.name.casefold() for p in (tmp_path / "site" / "runs" / "run").iterdir()}
    assert report.pages == 5 and len(pages) == 4


def test_hash_is_of_the_exact_id() -> None:
    # pinned so that a run's names never change between versions
    digest = hashlib.sha256(b"a b").hexdigest()[:8]
    assert file_stem("a b") == f"a_b-{digest}"
