"""What apps may use besides LLMs (tools, datasources), how requests are priced, and tags."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from control_plane.config.currency import CURRENCY_CODE
from control_plane.config.json_fields import JSONListField, JSONObjectField
from control_plane.plugins.models import SLUG
from control_plane.sync.namespaces import namespace_check, validate_namespace
from shared_sdk.vendors import VENDORS

EMBEDDING_WIRES = frozenset({"openai", "google"})
"""The vendor wire formats whose embeddings API the studio calls (`control_plane.plugins.studio_embeddings`)."""

PRICE: dict[str, Any] = {
    "max_digits": 18,
    "decimal_places": 6,
    "default": Decimal("0"),
    "validators": [MinValueValidator(0)],
}


class Tool(models.Model):
    """An HTTP API an LLM chat (or an agent) may call, described by its OpenAPI spec. `auth_key_encrypted` is the
    API's credential as a Fernet token (`llms/secrets.py`), never clear; the spec's security scheme says where a
    call carries it (`tool_operations.py`)."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, validators=[SLUG])
    description = models.TextField(blank=True, default="")
    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True, validators=[validate_namespace])
    privacy_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    openapi_spec = JSONObjectField(blank=True)
    operations = JSONListField(blank=True)
    auth_key_encrypted = models.TextField(blank=True, default="", editable=False)
    is_active = models.BooleanField(default=True)
    metadata = JSONObjectField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [namespace_check("catalog_tool")]
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def has_auth_key(self) -> bool:
        return bool(self.auth_key_encrypted)


class Datasource(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, validators=[SLUG])
    description = models.TextField(blank=True, default="")
    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True, validators=[validate_namespace])
    privacy_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    vector_store = models.CharField(max_length=100, blank=True, default="", help_text="e.g. pgvector, qdrant")
    embedding_llm = models.ForeignKey(
        "llms.LLM",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The LLM that embeds this datasource's documents and the chat's questions (OpenAI-compatible or "
        "Gemini vendors serve embeddings); empty: documents cannot be added",
    )
    embedder = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="The embedding model, e.g. text-embedding-3-small; empty: the embedding LLM's default model",
    )
    is_active = models.BooleanField(default=True)
    metadata = JSONObjectField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [namespace_check("catalog_datasource")]
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        """The embedding LLM reads every document: it must be trusted with the datasource's privacy score (the
        rule that keeps an app's resources within its LLMs' scores) and speak an embeddings API."""
        super().clean()
        try:
            llm = self.embedding_llm
        except ObjectDoesNotExist:  # no such LLM: `clean_fields` already said so
            return
        if llm is None:
            return
        errors = []
        if llm.privacy_score < self.privacy_score:
            errors.append(
                f"The embedding LLM {llm.slug} has privacy score {llm.privacy_score}, below this datasource's "
                f"{self.privacy_score}: it may not read these documents."
            )
        wire = VENDORS[llm.vendor].wire if llm.vendor in VENDORS else ""
        if wire not in EMBEDDING_WIRES:
            errors.append(f"The embedding LLM {llm.slug} is on a vendor whose embeddings the studio does not call.")
        if errors:
            raise ValidationError({"embedding_llm": errors})


class Tag(models.Model):
    name = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelPrice(models.Model):
    """Price per one million tokens of one vendor's model; Decimal throughout, because floats lose cents."""

    vendor = models.CharField(max_length=20)
    model = models.CharField(max_length=200, help_text="The upstream model name, matched exactly")
    prompt_per_million = models.DecimalField(**PRICE)
    completion_per_million = models.DecimalField(**PRICE)
    cache_read_per_million = models.DecimalField(**PRICE)
    cache_write_per_million = models.DecimalField(**PRICE)
    currency = models.CharField(max_length=3, default="USD", validators=[CURRENCY_CODE])
    max_output_tokens = models.PositiveIntegerField(
        default=4096,
        validators=[MinValueValidator(1)],
        help_text="The model's output limit: what a budget reserves for a request that sets no max_tokens",
    )
    max_input_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=(
            "The model's input limit (its context window). Caps the input tokens a budget or a tokens-per-minute "
            "limit reserves for a request, and is what a request giving a document, video or audio by reference "
            "(a URL, a file id) reserves, since its tokens cannot be told from its bytes (an image by reference "
            "reserves 50,000). Empty: no cap, and such a request reserves 1,048,576 input tokens. Never set it "
            "below the real limit."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vendor", "model"]
        constraints = [models.UniqueConstraint(fields=["vendor", "model"], name="one_price_per_model")]

    def __str__(self) -> str:
        return f"{self.vendor}/{self.model}"
