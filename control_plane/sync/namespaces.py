"""The one rule for namespace names, applied by every model that has a namespace and by the database.

A namespace travels into NATS as a subject token (`fj.up.<ns>.<edge>.telemetry`, `fj.down.<ns>.reload`) and
a KV bucket name (`FJ_CFG_<ns>`). NATS refuses whitespace, `.`, `*` and `>` in a subject token and allows only
`[A-Za-z0-9_-]` in a bucket name; `shared_sdk.sync_protocol.namespace_token` additionally reserves a leading
`_` for its own tokens (`_` = global, `_all` = broadcast). The control plane's rule is a strict subset of all of
these, shaped like a DNS label so the same name also fits a Kubernetes namespace or a host name:

    lowercase letters, digits and '-', 1-63 characters, starting and ending with a letter or digit;
    or "" for a global object (every namespace sees it).

A name that passes here can always be published; one that fails could never reach an edge and used to block
the bridge (issue 13). Rows written before the rule existed are left as they are (the database constraint is
added `NOT VALID`, see `namespace_check_sql`) and are refused again only when someone edits them.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

__all__ = [
    "NAMESPACE_MAX_LENGTH",
    "NAMESPACE_PATTERN",
    "NAMESPACE_RULE",
    "namespace_check",
    "namespace_check_sql",
    "namespace_is_valid",
    "validate_namespace",
]

NAMESPACE_MAX_LENGTH = 63
NAMESPACE_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$"
"""Empty (global) or a DNS label; also the regular expression of the database CHECK constraints."""
NAMESPACE_RULE = (
    "A namespace is empty (global) or 1-63 lowercase letters, digits and '-', starting and ending with a letter "
    "or digit."
)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def namespace_is_valid(value: object) -> bool:
    return isinstance(value, str) and _NAMESPACE.fullmatch(value) is not None


def validate_namespace(value: object) -> None:
    """Django/DRF field validator: a model field with it gives form errors in the admin and 400s in the API."""
    if not namespace_is_valid(value):
        raise ValidationError(f"{NAMESPACE_RULE} Got {value!r}.", code="invalid_namespace")


def namespace_check(table: str) -> models.CheckConstraint:
    """The model-state side of the database rule (the migration adds it as SQL, `NOT VALID`)."""
    return models.CheckConstraint(
        condition=Q(namespace__regex=NAMESPACE_PATTERN),
        name=f"{table}_namespace_valid",
        violation_error_message=NAMESPACE_RULE,
    )


def namespace_check_sql(table: str) -> tuple[str, str]:
    """(forward, reverse) SQL adding the CHECK constraint to `table` without validating existing rows.

    `NOT VALID`: PostgreSQL checks every row inserted or updated from now on, but a deployment that already
    holds a bad namespace migrates instead of failing; those rows are found with the admin's namespace filter
    (or `SELECT ... WHERE namespace !~ pattern`) and fixed by hand, and `ALTER TABLE ... VALIDATE CONSTRAINT`
    makes the rule complete once they are.
    """
    name = f"{table}_namespace_valid"
    forward = f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK (namespace ~ '{NAMESPACE_PATTERN}') NOT VALID"
    return forward, f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"
