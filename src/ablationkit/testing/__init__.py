"""Test helpers that ship with the package: a real OpenAI-compatible server on loopback, and
responders that script it."""

from ablationkit.testing.fake_server import FakeLLMServer, Reply
from ablationkit.testing.responders import plan_or_verdict

__all__ = ["FakeLLMServer", "Reply", "plan_or_verdict"]
