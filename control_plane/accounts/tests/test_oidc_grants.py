"""The group map an operator writes: what each grant means, and a clear error for what it cannot mean."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from control_plane.accounts.oidc_grants import Grants, parse_group_map


def test_grants_add_up_to_the_strongest_role_per_namespace():
    grants = Grants()
    for grant in ["viewer:team-a", "admin:team-a", "operator:team-a", "group:devs", "viewer:"]:
        grants.add(grant)
    assert grants.roles == {"team-a": "admin", "": "viewer"} and grants.groups == {"devs"}
    assert grants.staff and not grants.superuser


@pytest.mark.parametrize(
    "text, message",
    [
        ("[]", "JSON object"),
        ('{"g": 3}', "string or a list"),
        ('{"g": "root"}', "unknown grant"),
        ('{"g": ["group:"]}', "names no group"),
    ],
)
def test_bad_maps_are_refused_with_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_group_map(text)


def test_a_bad_map_stops_the_control_plane_with_one_line():
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "x",
        "FJORDGATE_OIDC_ISSUER": "http://127.0.0.1:9",
        "FJORDGATE_OIDC_CLIENT_ID": "c",
        "FJORDGATE_OIDC_CLIENT_SECRET": "s",
        "FJORDGATE_OIDC_GROUP_MAP": '{"g": "root"}',
    }
    done = subprocess.run(
        [sys.executable, "-c", "import control_plane.config.base"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "FJORDGATE_OIDC_GROUP_MAP" in done.stderr and "unknown grant" in done.stderr
