"""Reads of the catalogue that need care: a tool's credential, in clear only for the call that sends it."""

from __future__ import annotations

from control_plane.llms.secrets import vendor_key_decrypt

from .models import Tool

__all__ = ["tool_auth_key"]


def tool_auth_key(tool_id: int) -> str:
    """The active tool's key in clear ("" when it has none or is gone): read when a call is made, not kept."""
    token = Tool.objects.filter(pk=tool_id, is_active=True).values_list("auth_key_encrypted", flat=True).first()
    return vendor_key_decrypt(token or "")
