"""Test helpers that ship with the package: a real OpenAI-compatible server on loopback."""

from ablationkit.testing.fake_server import FakeLLMServer, Reply

__all__ = ["FakeLLMServer", "Reply"]
