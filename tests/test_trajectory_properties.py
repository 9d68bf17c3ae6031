"""Property tests: render -> parse is the identity on generated plans.

The strategies deliberately produce what breaks naive markdown: ``#``, ``*``, ``-`` and
backslashes in names and keys, ", " inside metrics, empty strings and lists, mapping
replacements, HTML in the reasoning, and non-Latin scripts and emoji.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ablationkit import Ablation, Plan, parse_trajectory, render_trajectory
from ablationkit.schema import one_line

# Text without line breaks (the schema folds those in one-line fields) or surrogates.
_MARKDOWNY = st.sampled_from(
    [
        "#",
        "##",
        "###",
        "*",
        "**",
        "- ",
        "  - ",
        "\\",
        "**: ",
        ", ",
        "</div>",
        "<h2>",
        "🧠",
        "📋",
        "’",
        "é",
        "中文",
        " ",
    ]
)
_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
one_line_text = st.lists(st.one_of(st.text(_CHARS, max_size=12), _MARKDOWNY), max_size=6).map(
    "".join
)
multi_line_text = st.lists(
    st.one_of(one_line_text, st.sampled_from(["\n", "\n\n", "\n</div>\n\n", "\t"])), max_size=12
).map("".join)
ids = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="/\x85"),
    min_size=1,
    max_size=30,
)
model_ids = st.lists(ids, min_size=1, max_size=3).map("/".join)
# List items that read like mapping entries ("**key**: value") must stay list items.
mapping_like = st.builds(
    lambda backslashes, key, value: f"{backslashes}**{key}**: {value}",
    st.sampled_from(["", "\\", "\\\\"]),
    st.text(
        st.characters(
            blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="*\\\x85"
        ),
        max_size=8,
    ),
    one_line_text,
)
replacements = st.one_of(
    st.none(),
    st.lists(one_line_text, max_size=4),
    st.lists(mapping_like, min_size=1, max_size=3),
    st.dictionaries(one_line_text, one_line_text, max_size=4),
)
ablations = st.builds(
    Ablation,
    name=one_line_text,
    ablated_part=one_line_text,
    action=st.sampled_from(["REMOVE", "REPLACE", "ADD"]),
    replacement=replacements,
    metrics=st.lists(one_line_text, max_size=4),
)
plans = st.builds(
    Plan,
    planner=ids,
    model=model_ids,
    paper_id=ids,
    mode=st.sampled_from(["author", "reviewer"]),
    reasoning=multi_line_text,
    ablations=st.lists(ablations, max_size=5),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans)
def test_render_then_parse_is_identity(plan: Plan) -> None:
    text = render_trajectory(plan)
    back = parse_trajectory(text)
    assert back.model_dump() == plan.model_dump()
    assert render_trajectory(back) == text


@settings(max_examples=200, deadline=None)
@given(plans)
def test_json_round_trip_is_identity(plan: Plan) -> None:
    assert Plan.model_validate_json(plan.to_json()).model_dump() == plan.model_dump()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_line_breaks_in_one_line_fields_are_folded(name: str) -> None:
    ablation = Ablation(
        name=name, ablated_part=name, action="ADD", replacement=[name], metrics=[name]
    )
    assert ablation.name == one_line(name)
    assert "\n" not in ablation.name and "\r" not in ablation.ablated_part
