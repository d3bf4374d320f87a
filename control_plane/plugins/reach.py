"""`PluginReach`: which objects and events a studio plugin reaches, decided by the namespace it is registered in.

Why: namespace roles (issue 16) keep a team-a operator out of team-b, but a plugin that operator registers runs
with the control plane's own services. Without this, its event subscriptions hear team-b's audit entries (diffs
included) and its studio services read and change team-b's apps. The runtime binds a `PluginReach` to the
services it hands each plugin when it loads it, from the plugin's `Plugin` row: the identity is the host's record
of which plugin is calling, never something the plugin sends, so it holds in-process and isolated alike.

The rule is the one `control_plane.accounts.access` applies to a person with a role in the namespace:

- a **global plugin** (namespace "") reaches everything, as before;
- a **namespaced plugin** reads its namespace's objects and the global ones (namespace "": they travel in every
  namespace's snapshot), and changes only its namespace's. Another namespace's object does not exist for it
  (reads answer "not found", a write is refused as for a missing id, so nothing leaks that it exists); a global
  object is read-only (a write is refused, saying so);
- users are global-only rows, so a namespaced plugin reads only the users tied to its namespace: holding a role
  in it, owning one of its apps, or having their self-service apps created there;
- it hears the events of its namespace and those of namespace "" (about global objects, from global edges and
  global plugins), never another namespace's; what it publishes stays in its namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from control_plane.accounts.access import Access

__all__ = ["EVERYWHERE", "PluginReach"]


@dataclass(frozen=True, slots=True)
class PluginReach:
    """The namespace a plugin is confined to; "" is a global plugin, which is not confined."""

    namespace: str = ""

    @property
    def everywhere(self) -> bool:
        return not self.namespace

    def hears(self, event_namespace: str) -> bool:
        """Whether an event of `event_namespace` is delivered to this plugin."""
        return self.everywhere or event_namespace in (self.namespace, "")

    def publishing_namespace(self, event_namespace: str) -> str:
        """The namespace an event this plugin publishes goes out with: its own (filled in when left empty).

        Raises `ValueError` for another namespace: a namespaced plugin neither talks to another namespace's
        edges and plugins nor broadcasts to every edge."""
        if self.everywhere or event_namespace == self.namespace:
            return event_namespace
        if not event_namespace:
            return self.namespace
        raise ValueError(
            f"a plugin of namespace {self.namespace!r} publishes only in its namespace, not in {event_namespace!r}"
        )

    def _access(self) -> Access:
        if self.everywhere:
            return Access(is_superuser=True, roles={})
        return Access(is_superuser=False, roles={self.namespace: "admin"})

    def visible(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The rows of a namespaced model (apps, LLMs, tools, ...) this plugin may read."""
        return self._access().filter_visible(queryset)

    def visible_users(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The users this plugin may read: all for a global plugin, those tied to its namespace otherwise."""
        if self.everywhere:
            return queryset
        ns = self.namespace
        tied = (
            Q(namespace_roles__namespace=ns) | Q(fjordgate_apps__namespace=ns) | Q(fjordgate_profile__app_namespace=ns)
        )
        return queryset.filter(pk__in=queryset.model.objects.filter(tied).values("pk"))

    def missing(self, kind: str, object_id: object) -> str:
        """The message for an object this plugin does not see (absent, or in another namespace: the same)."""
        if self.everywhere:
            return f"no {kind} {object_id}"
        return f"no {kind} {object_id} in namespace {self.namespace!r}"

    def write_refusal(self, kind: str, object_namespace: str) -> str | None:
        """Why this plugin may not change a visible `kind` object of `object_namespace`; `None` when it may."""
        if self.everywhere or object_namespace == self.namespace:
            return None
        return (
            f"{kind}s in the global objects are read-only to a plugin of namespace {self.namespace!r} "
            "(register the plugin globally to change them)"
        )


EVERYWHERE = PluginReach("")
