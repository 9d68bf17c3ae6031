"""The CLI through the installed console script, exactly as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ablationkit import load_plan, render_trajectory


def run(cli: str, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [cli, *map(str, args)], capture_output=True, cwd=cwd, timeout=120, check=False
    )


def test_help_and_version(cli: str) -> None:
    result = run(cli, "--help")
    assert result.returncode == 0
    assert b"convert" in result.stdout
    version = run(cli, "--version")
    assert version.returncode == 0 and version.stdout.startswith(b"ablationkit ")


def test_convert_seed_to_markdown_on_stdout(cli: str, seeds_dir: Path) -> None:
    seed = seeds_dir / "001_78760e1e4bf594d1.txt"
    result = run(cli, "convert", seed, "--to", "md")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")
    assert out.startswith("<style>") and "🧠 Reasoning Trace" in out and "ðŸ" not in out
    assert out == render_trajectory(load_plan(seed))


def test_convert_to_json_on_stdout_validates(cli: str, trajectories_dir: Path) -> None:
    path = next(iter(sorted(trajectories_dir.glob("claude-35-sonnet/*.md"))))
    result = run(cli, "convert", path, "--to", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "claude-3.5-sonnet"
    assert data["ablations"] and set(data["ablations"][0]) >= {"name", "ablated_part", "action"}


def test_markdown_round_trip_through_the_cli_is_byte_exact(
    cli: str, trajectories_dir: Path, tmp_path: Path
) -> None:
    sources = sorted(trajectories_dir.glob("gpt-4o/*.md"))[:20]
    result = run(cli, "convert", *sources, "--to", "json", "--out-dir", tmp_path / "json")
    assert result.returncode == 0, result.stderr
    jsons = sorted((tmp_path / "json").glob("*.json"))
    assert len(jsons) == 20
    result = run(cli, "convert", *jsons, "--to", "md", "-o", tmp_path / "md")
    assert result.returncode == 0, result.stderr
    for source in sources:
        # The JSON carries no layout, so this holds for canonical files (all but 2 in the corpus).
        rendered = (tmp_path / "md" / f"{source.stem}.md").read_bytes()
        assert rendered == source.read_bytes() or source.stem in {
            "Gaussian_Bernoulli_RBMs_Without_Tears",
            "spider-match",
        }


def test_bad_input_among_good_ones(cli: str, seeds_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "seed.txt"
    text = (seeds_dir / "000_f000b98a064e9d7e.txt").read_text("utf-8")
    broken.write_text(text.replace("Ablation Plan", "Plan"), "utf-8")
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    good = sorted(seeds_dir.glob("*.txt"))
    result = run(cli, "convert", broken, *good, empty, "--to", "json", "--out-dir", tmp_path / "o")
    assert result.returncode == 1
    err = result.stderr.decode("utf-8")
    assert f'{broken}: no "Ablation Plan" box' in err
    assert f"{empty}: empty file" in err
    assert "2 of 7 inputs failed:" in err
    assert err.rstrip().splitlines()[-1].strip() == f"{empty}: empty file"
    assert "Traceback" not in err
    assert len(list((tmp_path / "o").glob("*.json"))) == 5


def test_list_input_needs_a_mode(cli: str, papers_dir: Path) -> None:
    gt = papers_dir / "maskgit" / "ground_truth.jsonl"
    result = run(cli, "convert", gt, "--to", "md")
    assert result.returncode != 0 and b"--mode" in result.stderr
    result = run(cli, "convert", gt, "--to", "md", "--mode", "Author", "--model", "paper")
    assert result.returncode == 0  # a mode in any case
    assert b"# imported/paper/ground_truth" in result.stdout and b"#9c27b0" in result.stdout
    result = run(cli, "convert", gt, "--to", "md", "--mode", "auteur")
    assert result.returncode == 2
    assert b"unknown mode 'auteur': use author or reviewer" in result.stderr
    assert b"Value error" not in result.stderr


def test_several_inputs_need_an_out_dir(cli: str, seeds_dir: Path) -> None:
    seeds = sorted(seeds_dir.glob("*.txt"))
    result = run(cli, "convert", *seeds, "--to", "md")
    assert result.returncode == 2 and b"--out-dir" in result.stderr


def test_help_shows_no_bool_type_beside_flags(cli: str) -> None:
    import subprocess

    for command in (["plan"], ["bench", "plan"], ["bench", "score"], ["site"], []):
        done = subprocess.run([cli, *command, "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "<bool>" not in done.stdout, command
