"""Who may view and change what: the one policy the API, the admin and the querysets ask.

Super-administrators (`is_superuser`) see and change everything. Everyone else gets exactly what their
`NamespaceRole` rows give them, per namespace:

    admin       changes everything in its namespaces
    operator    changes the operations kind (edges, plugins, schedules, object hooks, plugin KV) there and
                reads the rest
    viewer      reads

Global objects (namespace "" and the global-only models: users, groups, prices, tags, ...) are readable by
any role holder (they travel in every namespace's snapshot) and changeable only through a role on "".
A user with no role and no superuser flag, staff or not, administers nothing (self-service only).

Role rows (`NamespaceRole`) live in their namespace like any other object, so the same table decides who grants
and revokes: an admin of N grants any role in N (it holds the strongest one there, so it hands out nothing it
lacks), an operator or viewer of N grants nothing, and nobody grants in a namespace they do not administer. The
API and the admin add one rule on top: only a super-administrator touches a super-administrator's rows.

An API token narrows its owner's access further: to its namespaces (if any) and to reads (if read-only).

`NAMESPACE_PATHS` maps each model to the lookup that reaches its namespace, in ONE place; models not in it
are global-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Model, Q, QuerySet

__all__ = [
    "ALL",
    "GLOBAL_ONLY",
    "NAMESPACE_PATHS",
    "OPERATIONS",
    "Access",
    "access_for",
    "model_key",
    "namespace_of",
    "namespace_of_data",
    "user_takeover_refusal",
]

#: The lookup from a model (app_label.model_name) to its namespace.
NAMESPACE_PATHS: dict[str, str] = {
    "applications.app": "namespace",
    "applications.credential": "app__namespace",
    "applications.pluginresource": "app__namespace",
    "llms.llm": "namespace",
    "llms.llmpluginbinding": "llm__namespace",
    "catalog.tool": "namespace",
    "catalog.datasource": "namespace",
    "retrieval.document": "datasource__namespace",
    "budgets.budget": "namespace",
    "plugins.plugin": "namespace",
    "plugins.outboundevent": "namespace",
    "schedules.pluginschedule": "plugin__namespace",
    "schedules.schedulerun": "schedule__plugin__namespace",
    "hooks.objecthookregistration": "plugin__namespace",
    "edges.edgeinstance": "namespace",
    "edges.publishedconfig": "namespace",
    "edges.edgereloadrequest": "namespace",
    "sync.configchange": "namespace",
    "audit.auditentry": "namespace",
    "analytics.analyticsevent": "namespace",
    "analytics.budgetusagerecord": "namespace",
    "analytics.proxylogrecord": "namespace",
    "analytics.edgepayloadrecord": "namespace",
    "accounts.namespacerole": "namespace",
}

#: Where a new object's namespace comes from when the service derives it (a budget takes its target's).
DERIVED_NAMESPACE_SOURCES: dict[str, tuple[str, ...]] = {
    "budgets.budget": ("app", "llm"),
    "retrieval.document": ("datasource",),
}

#: What an operator may change in its namespaces: the operations side, not the domain.
OPERATIONS: frozenset[str] = frozenset(
    {
        "plugins.plugin",
        "schedules.pluginschedule",
        "schedules.schedulerun",
        "hooks.objecthookregistration",
        "edges.edgeinstance",
        "edges.edgereloadrequest",
        "kv.kventry",
    }
)

GLOBAL_ONLY = ""  # the namespace global-only models count as
ALL = None  # "every namespace" in the sets below


def model_key(model: Any) -> str:
    return model._meta.label_lower


def namespace_of(obj: Model) -> str:
    """The namespace an existing object lives in ("" for global-only models and namespace-less rows)."""
    path = NAMESPACE_PATHS.get(model_key(obj))
    if path is None:
        return GLOBAL_ONLY
    value: Any = obj
    for part in path.split("__"):
        value = getattr(value, part, None)
        if value is None:
            return GLOBAL_ONLY
    return str(value)


def namespace_of_data(model: Any, data: dict[str, Any], instance: Model | None = None) -> str:
    """The namespace an object will live in once `data` (validated input) is written to it (or created)."""
    key = model_key(model)
    for source in DERIVED_NAMESPACE_SOURCES.get(key, ()):
        target = data.get(source, getattr(instance, source, None) if instance is not None else None)
        if target is not None:
            return namespace_of(target)
    if key in DERIVED_NAMESPACE_SOURCES:
        return GLOBAL_ONLY
    path = NAMESPACE_PATHS.get(key)
    if path is None:
        return GLOBAL_ONLY
    head, _, rest = path.partition("__")
    if head not in data:
        return namespace_of(instance) if instance is not None else GLOBAL_ONLY
    value: Any = data[head]
    for part in rest.split("__") if rest else ():
        value = getattr(value, part, None)
    return str(value or "")


@dataclass(frozen=True)
class Access:
    """One caller's access. `None` in a set means every namespace."""

    is_superuser: bool
    roles: dict[str, str]  # namespace -> role
    token_namespaces: frozenset[str] | None = None  # a token's narrowing list (None = no narrowing)
    read_only: bool = False

    @property
    def administers_anything(self) -> bool:
        """Whether this caller is an administrator of some kind (as opposed to a self-service user)."""
        return self.is_superuser or bool(self.roles)

    def viewable(self, key: str) -> frozenset[str] | None:
        if self.is_superuser:
            if self.token_namespaces is None:
                return ALL
            return self.token_namespaces | {GLOBAL_ONLY}
        if not self.roles:
            return frozenset()
        namespaces = frozenset(self.roles) | {GLOBAL_ONLY}
        if self.token_namespaces is not None:
            namespaces &= self.token_namespaces | {GLOBAL_ONLY}
        return namespaces

    def changeable(self, key: str) -> frozenset[str] | None:
        if self.read_only:
            return frozenset()
        if self.is_superuser:
            return self.token_namespaces if self.token_namespaces is not None else ALL
        namespaces = frozenset(
            ns for ns, role in self.roles.items() if role == "admin" or (role == "operator" and key in OPERATIONS)
        )
        if self.token_namespaces is not None:
            namespaces &= self.token_namespaces
        return namespaces

    def can_view(self, model: Any, namespace: str) -> bool:
        allowed = self.viewable(model_key(model))
        return allowed is ALL or namespace in allowed

    def can_change(self, model: Any, namespace: str) -> bool:
        allowed = self.changeable(model_key(model))
        return allowed is ALL or namespace in allowed

    def can_change_any(self, model: Any) -> bool:
        """Whether there is a namespace where this caller may write `model` objects (global-only: "")."""
        if model_key(model) not in NAMESPACE_PATHS:
            return self.can_change(model, GLOBAL_ONLY)
        allowed = self.changeable(model_key(model))
        return allowed is ALL or bool(allowed)

    def filter_visible(self, queryset: QuerySet) -> QuerySet:
        """Only the rows this caller may see."""
        allowed = self.viewable(model_key(queryset.model))
        if allowed is ALL:
            return queryset
        path = NAMESPACE_PATHS.get(model_key(queryset.model))
        if path is None:
            return queryset if GLOBAL_ONLY in allowed else queryset.none()
        condition = Q(**{f"{path}__in": sorted(allowed)})
        if GLOBAL_ONLY in allowed and "__" in path:
            condition |= Q(**{f"{path}__isnull": True})  # e.g. a schedule of a system job (no plugin)
        return queryset.filter(condition)

    def change_refusal(self, model: Any, namespaces: list[str]) -> str | None:
        """Why this caller may not write a `model` object in (each of) `namespaces`; None when it may."""
        if self.read_only:
            return "This API token is read-only."
        for namespace in dict.fromkeys(namespaces):
            if not self.can_change(model, namespace):
                where = f"namespace {namespace!r}" if namespace else "the global objects"
                return f"You may not change {model._meta.verbose_name_plural} in {where}."
        return None


def access_for(user: Any, token: Any = None) -> Access:
    """The access of a signed-in user, narrowed by the API token used (if any)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Access(is_superuser=False, roles={})
    from .models import NamespaceRole

    roles = {} if user.is_superuser else dict(NamespaceRole.objects.filter(user=user).values_list("namespace", "role"))
    token_namespaces = None
    read_only = False
    if token is not None and hasattr(token, "namespaces"):
        token_namespaces = frozenset(token.namespaces) if token.namespaces else None
        read_only = bool(token.read_only)
    return Access(
        is_superuser=bool(user.is_superuser), roles=roles, token_namespaces=token_namespaces, read_only=read_only
    )


def user_takeover_refusal(access: Access, user: Any, *, caller_id: int | None) -> str | None:
    """Why this caller may not change or delete the account `user` (which exists), or None when it may.

    Users are global objects, so an administrator of "" manages them; but whoever sets an account's password or
    e-mail (OIDC finds a user by e-mail) can sign in as it and act with its roles. So an account holding roles is
    written only by a caller who could grant and revoke each of them itself (an administrator of each of those
    namespaces), else an administrator of "" becomes an administrator of any namespace through its holder's
    account. Super-administrators' accounts have their own rule (`services.SUPERUSER_GUARD_MESSAGE`); a caller's
    own account is its own.
    """
    if user.pk == caller_id:
        return None
    from .models import NamespaceRole

    held = NamespaceRole.objects.filter(user=user).values_list("namespace", flat=True).distinct().order_by("namespace")
    for namespace in held:
        if not access.can_change(NamespaceRole, namespace):
            where = f"namespace {namespace!r}" if namespace else "the global objects"
            return (
                f"This user holds a role in {where}: only an administrator there (or a super-administrator) may "
                "change or delete the account."
            )
    return None
