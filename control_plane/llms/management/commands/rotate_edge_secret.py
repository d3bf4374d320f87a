"""`manage.py rotate_edge_secret`: re-encrypt every LLM's edge copy of its vendor key under a new edge secret.

Rotation, step by step (docs/control-plane.md): put the new key in FJORDGATE_EDGE_SECRET for the control plane
(and the edges, which then cannot open old copies until the next snapshot arrives), run this command, and the
config change it records per namespace ships the new copies to the edges.

The old secret is never taken on the command line (it would show in `ps` and shell history): name an environment
variable holding it (`--old-secret-env`) or a file (`--old-secret-file`). Without either, each edge copy is
re-made from the at-rest key (FJORDGATE_SECRET_KEY), which needs no old secret at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from control_plane.llms.services import llm_edge_keys_rotate
from fjordgate.env import ConfigError, env_str


class Command(BaseCommand):
    help = "Re-encrypt every LLM's edge copy of its vendor key under the current FJORDGATE_EDGE_SECRET."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--old-secret-env", metavar="NAME", help="Environment variable holding the old secret")
        source.add_argument("--old-secret-file", metavar="PATH", type=Path, help="File holding the old secret")
        parser.add_argument("--dry-run", action="store_true", help="Check every key can be rotated; change nothing")
        parser.add_argument("--json", action="store_true", help="Print the result as one JSON object")

    def handle(self, *args, old_secret_env=None, old_secret_file=None, dry_run=False, json=False, **options):
        old_secret = self._old_secret(old_secret_env, old_secret_file)
        try:
            with transaction.atomic():
                rotated = llm_edge_keys_rotate(old_edge_secret=old_secret)
                if dry_run:
                    transaction.set_rollback(True)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        result = {
            "dry_run": dry_run,
            "source": "old edge secret" if old_secret else "at-rest key",
            "llms": sum(len(slugs) for slugs in rotated.values()),
            "namespaces": {namespace or "(global)": slugs for namespace, slugs in sorted(rotated.items())},
        }
        if json:
            self.stdout.write(_json(result))
            return
        verb = "Would re-encrypt" if dry_run else "Re-encrypted"
        self.stdout.write(f"{verb} {result['llms']} edge key(s) from the {result['source']}.")
        for namespace, slugs in result["namespaces"].items():
            suffix = "" if dry_run else " (config change recorded)"
            self.stdout.write(f"  {namespace}: {', '.join(slugs)}{suffix}")

    def _old_secret(self, env_name: str | None, path: Path | None) -> str | None:
        if env_name:
            try:
                value = env_str(env_name, required=True)
            except ConfigError as exc:
                raise CommandError(str(exc)) from None
            return value.strip()
        if path is not None:
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CommandError(f"Cannot read the old secret from {path}: {exc.strerror}") from None
            if not value:
                raise CommandError(f"{path} is empty.")
            return value
        return None


def _json(value: dict) -> str:
    return json.dumps(value, sort_keys=True)
