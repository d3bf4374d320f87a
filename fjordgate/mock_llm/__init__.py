"""A stand-in LLM vendor for tests and benchmarks: OpenAI-, Anthropic- and Gemini-compatible, with injectable faults.

It imports nothing from the rest of Fjordgate, because it plays the part of a third party. See docs/mock-llm.md.
"""

from .app import create_app
from .settings import MockSettings

__all__ = ["MockSettings", "create_app"]
