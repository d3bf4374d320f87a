"""Settings-time check of the OpenID Connect group map (imported by settings: no Django models here)."""

from __future__ import annotations

import json

from fjordgate.env import ConfigError


def check_group_map(text: str) -> None:
    from .oidc_grants import parse_group_map

    try:
        parse_group_map(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError("FJORDGATE_OIDC_GROUP_MAP", str(exc)) from None
