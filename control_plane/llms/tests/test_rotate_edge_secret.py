"""`manage.py rotate_edge_secret`: new edge copies of every vendor key, a config change per namespace, no leaks."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.core.management.base import CommandError

from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create
from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import snapshot_build

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
KEYS = {"eu-gpt": "sk-eu-VENDOR-1a2b3c", "global-gpt": "sk-global-VENDOR-4d5e6f"}


@pytest.fixture
def llms(settings):
    settings.FJORDGATE_EDGE_SECRET = OLD
    for slug, namespace in (("eu-gpt", "eu"), ("global-gpt", "")):
        llm_create(
            data={
                "name": slug,
                "slug": slug,
                "vendor": "openai",
                "api_endpoint": "https://api.example/v1",
                "namespace": namespace,
                "api_key": KEYS[slug],
            }
        )
    llm_create(
        data={"name": "local", "slug": "local", "vendor": "mock", "api_endpoint": "http://m.local", "namespace": "us"}
    )  # no key: nothing to rotate
    settings.FJORDGATE_EDGE_SECRET = NEW  # the operator switched the secret; stored copies are still under OLD
    return {llm.slug: llm.api_key_edge_encrypted for llm in LLM.objects.all()}


def _opens(secret: str, token: str) -> str:
    return Fernet(secret).decrypt(token.encode()).decode()


def _rotate(*args: str) -> str:
    out = StringIO()
    call_command("rotate_edge_secret", *args, stdout=out)
    return out.getvalue()


def _new_changes(before: set[int]) -> set[tuple[str, str]]:
    return set(ConfigChange.objects.exclude(pk__in=before).values_list("namespace", "reason"))


@pytest.mark.parametrize("source", ["old-secret-env", "old-secret-file", "at-rest"])
def test_rotation_re_encrypts_every_edge_copy_and_tells_each_namespace(llms, source, monkeypatch, tmp_path):
    args: list[str] = []
    if source == "old-secret-env":
        monkeypatch.setenv("FJ_TEST_OLD_EDGE_SECRET", OLD)
        args = ["--old-secret-env", "FJ_TEST_OLD_EDGE_SECRET"]
    elif source == "old-secret-file":
        (tmp_path / "old").write_text(OLD + "\n")
        args = ["--old-secret-file", str(tmp_path / "old")]
    assert _opens(OLD, llms["eu-gpt"]) == KEYS["eu-gpt"]
    before = set(ConfigChange.objects.values_list("pk", flat=True))

    output = _rotate(*args)

    for slug, key in KEYS.items():
        copy = LLM.objects.get(slug=slug).api_key_edge_encrypted
        assert _opens(NEW, copy) == key
        with pytest.raises(InvalidToken):
            _opens(OLD, copy)
    assert LLM.objects.get(slug="local").api_key_edge_encrypted == ""
    assert _new_changes(before) == {
        ("eu", "edge secret rotated for llm(s) eu-gpt"),
        ("", "edge secret rotated for llm(s) global-gpt"),
    }
    # What the edges of "eu" receive next: both keys (its own and the global LLM's), openable with the new secret.
    snapshot = snapshot_build(namespace="eu")
    assert sorted(_opens(NEW, llm.api_key_encrypted) for llm in snapshot.llms if llm.api_key_encrypted) == sorted(
        KEYS.values()
    )
    assert "Re-encrypted 2 edge key(s)" in output and "eu: eu-gpt" in output
    assert not any(key in output for key in KEYS.values()) and OLD not in output and NEW not in output


def test_rotation_can_be_run_again_with_the_same_old_secret(llms, monkeypatch):
    monkeypatch.setenv("FJ_TEST_OLD_EDGE_SECRET", OLD)
    _rotate("--old-secret-env", "FJ_TEST_OLD_EDGE_SECRET")
    _rotate("--old-secret-env", "FJ_TEST_OLD_EDGE_SECRET")  # copies already under NEW are accepted
    assert _opens(NEW, LLM.objects.get(slug="eu-gpt").api_key_edge_encrypted) == KEYS["eu-gpt"]


def test_a_wrong_old_secret_changes_nothing_and_names_the_llms(llms, monkeypatch):
    monkeypatch.setenv("FJ_TEST_OLD_EDGE_SECRET", Fernet.generate_key().decode())
    before = set(ConfigChange.objects.values_list("pk", flat=True))
    with pytest.raises(CommandError, match=r"LLM\(s\) eu-gpt, global-gpt .*nothing changed"):
        _rotate("--old-secret-env", "FJ_TEST_OLD_EDGE_SECRET")
    assert {llm.slug: llm.api_key_edge_encrypted for llm in LLM.objects.all()} == llms
    assert _new_changes(before) == set()


def test_bad_input_gets_a_clear_error(llms, monkeypatch, tmp_path):
    with pytest.raises(CommandError, match="FJ_TEST_UNSET_SECRET"):
        _rotate("--old-secret-env", "FJ_TEST_UNSET_SECRET")
    monkeypatch.setenv("FJ_TEST_OLD_EDGE_SECRET", "not-a-fernet-key")
    with pytest.raises(CommandError, match="Fernet key"):
        _rotate("--old-secret-env", "FJ_TEST_OLD_EDGE_SECRET")
    with pytest.raises(CommandError, match="Cannot read the old secret"):
        _rotate("--old-secret-file", str(tmp_path / "missing"))


def test_dry_run_checks_without_changing(llms):
    before = set(ConfigChange.objects.values_list("pk", flat=True))
    output = _rotate("--dry-run", "--json")
    assert '"llms": 2' in output and '"dry_run": true' in output
    assert {llm.slug: llm.api_key_edge_encrypted for llm in LLM.objects.all()} == llms
    assert _new_changes(before) == set()
