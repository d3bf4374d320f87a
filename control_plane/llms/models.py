"""LLM configurations: vendor, endpoint, encrypted key, allowed models, privacy score and plugin chain."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from control_plane.config.json_fields import JSONListField, JSONObjectField
from control_plane.plugins.models import SLUG
from control_plane.sync.namespaces import namespace_check, validate_namespace


class LLM(models.Model):
    """One upstream an edge may proxy to. `api_key_encrypted` is a Fernet token (see `secrets.py`), never clear."""

    class Vendor(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        AZURE = "azure", "Azure OpenAI"
        OLLAMA = "ollama", "Ollama"
        VLLM = "vllm", "vLLM"
        MOCK = "mock", "Mock"
        BEDROCK = "bedrock", "AWS Bedrock"
        MISTRAL = "mistral", "Mistral"
        GROQ = "groq", "Groq"
        TOGETHER = "together", "Together AI"
        DEEPSEEK = "deepseek", "DeepSeek"
        OPENROUTER = "openrouter", "OpenRouter"
        GOOGLE = "google", "Google Gemini (AI Studio key)"
        VERTEX = "vertex", "Google Vertex AI (Gemini)"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, validators=[SLUG])
    vendor = models.CharField(max_length=20, choices=Vendor.choices)
    api_endpoint = models.URLField(
        max_length=500,
        blank=True,
        help_text="The vendor's base URL; leave empty for the vendor's preset (shared_sdk/vendors.py)",
    )
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    api_key_edge_encrypted = models.TextField(
        blank=True,
        default="",
        editable=False,
        help_text="The key encrypted for edges, made once per key change so a snapshot's checksum is stable",
    )
    default_model = models.CharField(max_length=200, blank=True, default="")
    allowed_models = JSONListField(blank=True, help_text="Regular expressions (full match); empty allows every model")
    privacy_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    is_active = models.BooleanField(default=True)
    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True, validators=[validate_namespace])
    metadata = JSONObjectField(blank=True)
    fallbacks = JSONListField(blank=True, help_text='[{"llm_slug": "...", "model": null}]')
    max_retries = models.PositiveSmallIntegerField(default=2, validators=[MaxValueValidator(10)])
    connect_timeout_s = models.FloatField(
        default=5.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(300.0)],
        help_text="Seconds an edge waits for a connection to this LLM (pool wait and connect), 0.1 to 300.",
    )
    first_byte_timeout_s = models.FloatField(
        default=60.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(3600.0)],
        help_text="Seconds an edge waits for the reply's headers (and a stream's first bytes), 0.1 to 3600.",
    )
    max_response_bytes = models.PositiveBigIntegerField(
        default=32 * 1024 * 1024,
        validators=[MinValueValidator(1024), MaxValueValidator(1024**3)],
        help_text="Largest vendor reply an edge reads (decoded); a larger one is a 502. 1 KiB to 1 GiB.",
    )
    weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Share of traffic among the LLMs serving the same model at the same priority, 1 to 1000.",
    )
    priority = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="0 to 100, lower first: an LLM of a higher number takes a model's traffic only while no LLM "
        "of a lower one is healthy.",
    )
    breaker_cooldown_s = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(3600.0)],
        help_text="Seconds an edge sends this LLM nothing after it failed repeatedly (circuit breaker), 1 to 3600. "
        "Empty: the edge's default (30).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [namespace_check("llms_llm")]
        ordering = ["slug"]
        verbose_name = "LLM"

    def __str__(self) -> str:
        return self.slug

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class LLMPluginBinding(models.Model):
    """A plugin in an LLM's chain; `config_override` is deep-merged over the plugin's own config."""

    llm = models.ForeignKey(LLM, on_delete=models.CASCADE, related_name="plugin_bindings")
    plugin = models.ForeignKey("plugins.Plugin", on_delete=models.CASCADE, related_name="llm_bindings")
    order_index = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    config_override = JSONObjectField(blank=True)

    class Meta:
        ordering = ["llm", "order_index", "id"]
        constraints = [models.UniqueConstraint(fields=["llm", "plugin"], name="llm_plugin_once")]

    def __str__(self) -> str:
        return f"{self.llm_id}:{self.plugin_id}@{self.order_index}"
