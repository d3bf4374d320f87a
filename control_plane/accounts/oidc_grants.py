"""Parsing `FJORDGATE_OIDC_GROUP_MAP` and adding up what one sign-in grants (no Django imports: settings use it)."""

from __future__ import annotations

import json

__all__ = ["Grants", "parse_group_map"]


def parse_group_map(text: str) -> dict[str, list[str]]:
    """`FJORDGATE_OIDC_GROUP_MAP` as {provider group: [grants]}; raises ValueError naming what is wrong."""
    if not text.strip():
        return {}
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("must be a JSON object from a provider group to a grant or a list of grants")
    mapping: dict[str, list[str]] = {}
    for group, grants in raw.items():
        items = [grants] if isinstance(grants, str) else grants
        if not isinstance(items, list) or not all(isinstance(g, str) for g in items):
            raise ValueError(f"grants of {group!r} must be a string or a list of strings")
        for grant in items:
            kind, _, _ = grant.partition(":")
            if grant not in ("superuser", "staff") and kind not in ("admin", "operator", "viewer", "group"):
                raise ValueError(f"unknown grant {grant!r} for {group!r}")
            if kind == "group" and not grant.partition(":")[2]:
                raise ValueError(f"grant {grant!r} for {group!r} names no group")
        mapping[str(group)] = list(items)
    return mapping


class Grants:
    """What one sign-in grants: flags, Fjordgate groups, namespace roles (the strongest role per namespace)."""

    _RANK = {"viewer": 0, "operator": 1, "admin": 2}
    ROLES = frozenset(_RANK)

    def __init__(self) -> None:
        self.superuser = False
        self.staff = False
        self.groups: set[str] = set()
        self.roles: dict[str, str] = {}

    def add(self, grant: str) -> None:
        kind, _, target = grant.partition(":")
        if grant == "superuser":
            self.superuser = self.staff = True
        elif grant == "staff":
            self.staff = True
        elif kind == "group":
            self.groups.add(target)
        elif kind in self._RANK:
            self.staff = True
            if self._RANK[kind] > self._RANK.get(self.roles.get(target, ""), -1):
                self.roles[target] = kind
