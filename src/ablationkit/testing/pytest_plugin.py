"""pytest plugin (registered as ``ablationkit``): the ``fake_llm`` fixture.

``fake_llm`` is a started ``FakeLLMServer``; script it with ``fake_llm.script(...)`` and
point a model at ``fake_llm.url``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ablationkit.testing.fake_server import FakeLLMServer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server
