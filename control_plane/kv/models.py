"""The studio runtime's durable key-value store: one row per (plugin, key), shared by every control-plane host."""

from __future__ import annotations

from django.db import models

MAX_VALUE_BYTES = 5 * 1024 * 1024


class KVEntry(models.Model):
    plugin_slug = models.CharField(max_length=100)
    key = models.CharField(max_length=512)
    value = models.BinaryField()
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plugin_slug", "key"]
        verbose_name = "KV entry"
        verbose_name_plural = "KV entries"
        constraints = [models.UniqueConstraint(fields=["plugin_slug", "key"], name="kv_one_value_per_key")]
        indexes = [
            models.Index(
                fields=["plugin_slug", "key"],
                name="kv_prefix_idx",
                opclasses=["varchar_pattern_ops", "varchar_pattern_ops"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.plugin_slug}:{self.key}"
