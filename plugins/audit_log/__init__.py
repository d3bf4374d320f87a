from .plugin import AuditLog

__all__ = ["AuditLog"]
