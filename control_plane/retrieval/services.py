"""Writes of the datasources' documents: add one (chunked, embedded through the studio's LLM service, stored), or
delete one.

Embedding goes through `StudioServicesImpl.embed`, so a document costs what the same call through an edge would:
the embedding LLM's budgets may refuse it and every call is an analytics row (`source: datasource`). The document
and its chunks are stored in one transaction after every chunk was embedded: a refused or failed call stores
nothing, and the upload can simply be tried again.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from control_plane.catalog.models import Datasource
from control_plane.plugins.studio_services import StudioServicesImpl
from shared_sdk import ServiceError

from .chunking import chunk_text
from .models import Chunk, Document

__all__ = ["EMBED_BATCH", "document_add", "document_delete", "document_text_check"]

EMBED_BATCH = 64
"""Chunks per embeddings call: small enough for every vendor's input limit, large enough to be few calls."""


def document_text_check(text: str) -> str:
    """The text to store, or a `ValidationError` naming the limit or the fault (admin form and API show it as is).

    Checked before anything is embedded, so a refused document costs no embeddings call."""
    limit = settings.FJORDGATE_RETRIEVAL_MAX_DOCUMENT_CHARS
    if len(text) > limit:
        raise ValidationError(
            f"The document has {len(text):,} characters; a datasource takes documents of at most {limit:,}.",
            code="too_large",
        )
    if not text.strip():
        raise ValidationError("The document is empty.", code="empty")
    if "\x00" in text:  # valid UTF-8, so an upload may hold it; PostgreSQL's text cannot (it was a 500 on insert)
        raise ValidationError("The document contains NUL (\\u0000) characters: it is not text.", code="not_text")
    return text


async def _embed(llm_id: int, model: str, chunks: list[str]) -> list[list[float]]:
    services = StudioServicesImpl("", source="datasource")
    vectors: list[list[float]] = []
    for start in range(0, len(chunks), EMBED_BATCH):
        vectors.extend(await services.embed(llm_id, chunks[start : start + EMBED_BATCH], model=model))
    return vectors


def document_add(*, datasource: Datasource, title: str, text: str, actor_id: int | None = None) -> Document:
    """Chunk, embed and store one document of `datasource` (which must name an embedding LLM)."""
    text = document_text_check(text)
    title = title.strip()[:200] or "Untitled"
    llm = datasource.embedding_llm
    if llm is None:
        raise ValidationError(f"Datasource {datasource.slug} has no embedding LLM: choose one first.")
    model = datasource.embedder or llm.default_model
    if not model:
        raise ValidationError(f"Datasource {datasource.slug} names no embedding model, nor does LLM {llm.slug}.")
    chunks = chunk_text(text, settings.FJORDGATE_RETRIEVAL_CHUNK_CHARS)
    try:
        vectors = async_to_sync(_embed)(llm.pk, model, chunks)
    except ServiceError as exc:
        raise ValidationError(f"The embedding LLM {llm.slug} did not embed the document: {exc}") from None
    dimensions = {len(v) for v in vectors}
    if len(dimensions) != 1:
        raise ValidationError(f"The embedding LLM {llm.slug} answered vectors of different sizes.")
    with transaction.atomic():
        document = Document.objects.create(
            datasource=datasource,
            title=title,
            chars=len(text),
            embedding_llm=llm,
            embedding_model=model,
            dimensions=dimensions.pop(),
            added_by_id=actor_id,
        )
        Chunk.objects.bulk_create(
            Chunk(document=document, position=i, text=chunk, embedding=vector)
            for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
        )
    return document


def document_delete(*, document: Document) -> None:
    document.delete()
