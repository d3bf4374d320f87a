"""`{% plugin_admin_pages as pages %}` / `{% plugin_portal_pages as pages %}`: the menu entries of plugin pages."""

from __future__ import annotations

from typing import Any

from django import template

from control_plane.plugins.pages import PageSlot, page_slots

register = template.Library()


@register.simple_tag(takes_context=True)
def plugin_admin_pages(context: template.Context) -> list[PageSlot]:
    request = context.get("request")
    if request is None or not getattr(request.user, "is_staff", False):
        return []
    return page_slots("admin", user=request.user)


@register.simple_tag(takes_context=True)
def plugin_portal_pages(context: template.Context) -> list[PageSlot]:
    """Portal pages the signed-in user may see: a slot with `groups` only for members of one of them."""
    request = context.get("request")
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    slots = page_slots("portal")
    if not any(s.groups for s in slots):
        return slots
    mine = set(user.groups.values_list("name", flat=True))
    return [s for s in slots if not s.groups or mine & set(s.groups)]
