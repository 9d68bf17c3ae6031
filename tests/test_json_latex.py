"""LaTeX written by a model inside JSON strings survives the reply parser.

A model writes ``$\\beta$`` in a JSON string as ``"$\\beta$"`` (one backslash): to JSON that is
a backspace and ``eta``, and ``\\alpha`` is no escape at all. Replies are read as the model
meant them: a LaTeX command keeps its backslash, a real newline stays a newline.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ablationkit.judge.lm_judge import parse_matches
from ablationkit.lm import LMClient
from ablationkit.lm.jsonreply import extract_json
from ablationkit.papers import load_paper, sample_paper_path
from ablationkit.plan_io import dump_plan, save_plan
from ablationkit.planner import parse_plan_reply, plan
from ablationkit.schema import Plan
from ablationkit.testing import FakeLLMServer


def name_of(raw_json_string: str) -> str:
    """The value of ``{"name": <raw_json_string>}`` as the reply parser reads it; the argument
    is the string exactly as the model typed it, quotes included."""
    value = extract_json('{"name": ' + raw_json_string + "}")
    assert isinstance(value, dict)
    return str(value["name"])


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        (r'"Diversity term ($\beta$)"', r"Diversity term ($\beta$)"),  # \b: backspace
        (r'"$\tau$"', r"$\tau$"),  # \t: tab
        (r'"\nabla"', r"\nabla"),  # \n: newline
        (r'"\frac{1}{2}"', r"\frac{1}{2}"),  # \f: form feed
        (r'"$\rho_i$"', r"$\rho_i$"),  # \r: carriage return
        (r'"$\theta$ and $\times$"', r"$\theta$ and $\times$"),
        (r'"\textbf{bold}"', r"\textbf{bold}"),
        (r'"$\nu$ and $\to$"', r"$\nu$ and $\to$"),
        (r'"\alpha"', r"\alpha"),  # not a JSON escape at all: a parse error before
        (r'"\lambda=0.3"', r"\lambda=0.3"),
        (r'"$\mathcal{L}$ \left( x \right)"', r"$\mathcal{L}$ \left( x \right)"),
        (r'"\underline{x}"', r"\underline{x}"),  # \u without four hex digits
        (r'"50\% of $\{x\}$"', r"50\% of $\{x\}$"),
        (r'"\bm{x} \bigl("', r"\bm{x} \bigl("),
    ],
)
def test_latex_commands_keep_their_backslash(typed: str, meant: str) -> None:
    assert name_of(typed) == meant


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        (r'"a\nb"', "a\nb"),
        (r'"first line\nThe second"', "first line\nThe second"),
        (r'"one\n\ntwo\r\nthree"', "one\n\ntwo\r\nthree"),
        (r'"col\tvalue"', "col\tvalue"),
        (r'"caf\u00e9"', "café"),
        (r'"\\beta"', "\\beta"),  # escaped correctly: one backslash
        (r'"a \"quoted\" \/ word"', 'a "quoted" / word'),
        (r'"\\\\"', "\\\\"),
        (r'"\\\beta"', "\\\\beta"),  # an escaped backslash, then \beta
    ],
)
def test_real_json_escapes_keep_their_meaning(typed: str, meant: str) -> None:
    assert name_of(typed) == meant


def test_only_strings_are_touched_and_keys_too() -> None:
    value = extract_json(r'Here: {"\beta": [1, 2], "x": "\gamma", "y": true}  and \frac{a}{b}')
    assert value == {"\\beta": [1, 2], "x": "\\gamma", "y": True}


def test_latex_in_fenced_repaired_and_jsonl_replies() -> None:
    fenced = '```json\n{"name": "$\\beta$ sweep", "v": [1, 2,],}\n```'
    assert extract_json(fenced) == {"name": "$\\beta$ sweep", "v": [1, 2]}
    curly = "{“name”: “$\\tau$ = None”, “x”: None}"
    assert extract_json(curly) == {"name": "$\\tau$ = None", "x": None}
    jsonl = (
        "<discussion>about $\\beta$</discussion>\n<predictions>\n"
        '{"name": "No $\\beta$", "ablated_part": "\\beta term", "action": "REMOVE"}\n'
        "</predictions>"
    )
    value = extract_json(jsonl)
    assert value["predictions"][0]["name"] == "No $\\beta$"
    assert value["predictions"][0]["ablated_part"] == "\\beta term"


def test_plan_reply_with_latex_in_every_field() -> None:
    reply = (
        '{"reasoning": "The loss has $\\lambda$ and $\\beta$.\\nSecond line.",'
        ' "ablations": [{"name": "Diversity term ($\\beta$)",'
        ' "ablated_part": "the $\\nabla$-penalty with weight \\tau",'
        ' "action": "REPLACE", "replacement": ["$\\frac{1}{2}$", "$\\rho=0.1$"],'
        ' "metrics": ["\\textbf{accuracy}"]}]}'
    )
    reasoning, ablations = parse_plan_reply(reply)
    assert reasoning == "The loss has $\\lambda$ and $\\beta$.\nSecond line."
    (ablation,) = ablations
    assert ablation.name == "Diversity term ($\\beta$)"
    assert ablation.ablated_part == "the $\\nabla$-penalty with weight \\tau"
    assert ablation.replacement == ["$\\frac{1}{2}$", "$\\rho=0.1$"]
    assert ablation.metrics == ["\\textbf{accuracy}"]
    assert not re.search(r"[\x00-\x09\x0b-\x1f]", json.dumps(ablation.model_dump()))


def test_judge_reply_with_latex_reasoning() -> None:
    reasoning, matches = parse_matches(
        '{"reasoning": "both drop $\\beta$", "matches": [{"planned": 0, "ground_truth": 0}]}', 1, 1
    )
    assert reasoning == "both drop $\\beta$" and len(matches) == 1


def test_schema_constrained_reply_keeps_latex(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    """llama.cpp's JSON grammar lets a model write ``\\b`` (a valid escape) but never ``\\a``:
    the reply to a schema-bound request is valid JSON that means a backspace; we read it as
    the LaTeX the model wrote, through the whole planner, into the saved files."""
    reply = (
        '{"reasoning": "The diversity weight $\\beta$ and temperature $\\tau$ matter.",'
        ' "ablations": [{"name": "Diversity term ($\\beta$)", "ablated_part":'
        ' "diversity term $\\beta$ of the DPP", "action": "REPLACE",'
        ' "replacement": ["$\\beta = 0$", "$\\beta = 1$"], "metrics": ["accuracy"]}]}'
    )
    json.loads(reply)  # valid JSON as a grammar would force it: \b and \t are escapes
    fake_llm.script(reply)
    paper = load_paper(sample_paper_path())
    with LMClient(cache=False, timeout=10) as client:
        result = plan(
            paper, client=client, model="test-model", api_base=fake_llm.url, paper_id="k", k=1
        )
    assert "json_schema" in fake_llm.requests[0]["response_format"]  # the constrained path
    assert result.ablations[0].name == "Diversity term ($\\beta$)"
    assert result.ablations[0].replacement == ["$\\beta = 0$", "$\\beta = 1$"]
    assert "$\\beta$ and temperature $\\tau$" in result.reasoning
    json_path, md_path = save_plan(result, tmp_path)
    saved = Plan.model_validate_json(json_path.read_text("utf-8"))
    assert saved.ablations[0].name == "Diversity term ($\\beta$)"
    assert "Diversity term ($\\beta$)" in md_path.read_text("utf-8")
    assert "Diversity term ($\\beta$)" in dump_plan(saved, "md")


def test_site_shows_latex_names_verbatim(judged_runs: list[Path], tmp_path: Path) -> None:
    from ablationkit.site import build_site

    run = tmp_path / "run"
    shutil.copytree(judged_runs[0], run)
    plan_file = run / "plans" / "paper-000.json"
    saved = Plan.model_validate_json(plan_file.read_text("utf-8"))
    saved.ablations[0].name = name_of(r'"Diversity term ($\beta$)"')
    plan_file.write_text(saved.to_json(), "utf-8")
    build_site([run], tmp_path / "site", resamples=0)
    html = (tmp_path / "site" / "runs" / "run" / "paper-000.html").read_text("utf-8")
    assert "Diversity term ($\\beta$)" in html and "\x08" not in html
