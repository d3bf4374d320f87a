"""Offline for the third-party clients: LiteLLM reads its bundled model cost map instead of fetching it at import
(set before any test module imports `litellm`), and sends no telemetry."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")
