"""Reads of the datasources' documents: the chunks nearest to a question's vector.

With the pgvector extension installed (the embedded PostgreSQL ships it; `migrations/0002` creates it where the
database lets us) the ranking runs in PostgreSQL with pgvector's cosine distance `<=>` over the stored arrays cast
to `vector`. Without it every candidate vector is read and ranked in Python, which is 30 times slower (reading
the arrays dominates; docs/control-plane.md has the figures): fine for a few hundred chunks, install pgvector
beyond. Both paths give the same scores: cosine similarity in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import operator
from collections.abc import Sequence

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from .models import Chunk

__all__ = ["Hit", "chunks_nearest", "pgvector_enabled"]


@dataclasses.dataclass(frozen=True, slots=True)
class Hit:
    """One chunk a search found, with where it came from (what the chat shows as the source)."""

    datasource_id: int
    datasource_slug: str
    datasource_name: str
    document_id: int
    document_title: str
    position: int
    text: str
    score: float


def pgvector_enabled() -> bool:
    """True when the search may rank in PostgreSQL: the setting allows it and the extension is installed."""
    if not settings.FJORDGATE_RETRIEVAL_PGVECTOR:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone() is not None


def _candidates(datasource_ids: Sequence[int], llm_id: int, model: str, dimensions: int) -> QuerySet[Chunk]:
    """Chunks embedded by the same LLM and model, so their vectors are comparable with the question's."""
    return Chunk.objects.filter(
        document__datasource_id__in=list(datasource_ids),
        document__embedding_llm_id=llm_id,
        document__embedding_model=model,
        document__dimensions=dimensions,
    )


def _cosine(a: Sequence[float], a_norm: float, b: Sequence[float]) -> float:
    """Cosine with the question's norm computed once; `map(mul)` keeps the loop in C (several times faster)."""
    norms = a_norm * math.sqrt(sum(map(operator.mul, b, b)))
    return sum(map(operator.mul, a, b)) / norms if norms else 0.0


def _hit(chunk: Chunk, score: float) -> Hit:
    document = chunk.document
    return Hit(
        datasource_id=document.datasource_id,
        datasource_slug=document.datasource.slug,
        datasource_name=document.datasource.name,
        document_id=document.pk,
        document_title=document.title,
        position=chunk.position,
        text=chunk.text,
        score=round(score, 4),
    )


def chunks_nearest(
    *, datasource_ids: Sequence[int], llm_id: int, model: str, vector: Sequence[float], k: int, min_score: float
) -> list[Hit]:
    """The `k` chunks of the datasources most similar to `vector` (best first), none scoring below `min_score`."""
    candidates = _candidates(datasource_ids, llm_id, model, len(vector)).select_related("document__datasource")
    if pgvector_enabled():
        literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
        score = RawSQL(f"1 - ({Chunk._meta.db_table}.embedding::vector <=> %s::vector)", (literal,))
        ranked = candidates.annotate(score=score).filter(score__gte=min_score).order_by("-score", "id")[:k]
        return [_hit(chunk, float(chunk.score)) for chunk in ranked]
    norm = math.sqrt(sum(map(operator.mul, vector, vector)))
    scored = (
        (_cosine(vector, norm, embedding), pk)
        for pk, embedding in _candidates(datasource_ids, llm_id, model, len(vector)).values_list("pk", "embedding")
    )
    best = heapq.nlargest(k, ((s, pk) for s, pk in scored if s >= min_score), key=lambda item: (item[0], -item[1]))
    chunks = candidates.in_bulk([pk for _, pk in best])
    return [_hit(chunks[pk], s) for s, pk in best]
