"""The chat's retrieval step: the user's message is embedded, the nearest chunks of the datasources their
catalogue gives are found, and they become the LLM's context and a chunk the chat shows before the answer.

Only datasources the chatting LLM may see take part: a datasource whose privacy score is above the LLM's stays out,
the rule that keeps an app's resources within its LLMs' scores. The question is embedded once per embedding model
(usually one), as the chatting user's call (their budgets, their analytics). When retrieval fails (the embedding
LLM is down or over budget) the chat shows why and answers without context instead of failing the turn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

from control_plane.catalog.models import Datasource
from control_plane.llms.models import LLM
from control_plane.plugins.studio_services import StudioServicesImpl
from shared_sdk import ServiceError
from shared_sdk.messages import AgentChunk, AgentChunkType

from .selectors import Hit, chunks_nearest

__all__ = ["CONTEXT_KIND", "Retrieved", "chat_retrieve"]

CONTEXT_KIND = "datasource_context"
"""`metadata.kind` of the chunk that shows the sources: a tool result whose tool is the studio's retrieval."""

_EXCERPT = 240


@dataclasses.dataclass(frozen=True, slots=True)
class Retrieved:
    """What the chat does with retrieval: a chunk to show, and (when something was found) the system prompt."""

    chunk: AgentChunk
    prompt: str = ""


def _in_db(fn: Any) -> Any:
    def run(**kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(**kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


def _searchable(*, llm_id: int, datasource_ids: Sequence[int]) -> dict[tuple[int, str], list[int]]:
    """The datasources to search, grouped by (embedding LLM, model): active, with documents, within the chatting
    LLM's privacy score."""
    ceiling = LLM.objects.filter(pk=llm_id).values_list("privacy_score", flat=True).first()
    if ceiling is None:
        return {}
    groups: dict[tuple[int, str], list[int]] = {}
    rows = (
        Datasource.objects.filter(
            pk__in=list(datasource_ids),
            is_active=True,
            embedding_llm__isnull=False,
            embedding_llm__is_active=True,
            privacy_score__lte=ceiling,
            documents__isnull=False,
        )
        .distinct()
        .select_related("embedding_llm")
    )
    for ds in rows:
        assert ds.embedding_llm is not None
        groups.setdefault((ds.embedding_llm.pk, ds.embedder or ds.embedding_llm.default_model), []).append(ds.pk)
    return groups


def _nearest(**kwargs: Any) -> list[Hit]:
    return chunks_nearest(**kwargs)


def _shown(hits: list[Hit]) -> AgentChunk:
    sources = [
        {
            "datasource": h.datasource_slug,
            "datasource_name": h.datasource_name,
            "document": h.document_title,
            "document_id": h.document_id,
            "score": h.score,
            "excerpt": h.text if len(h.text) <= _EXCERPT else h.text[: _EXCERPT - 1] + "…",
        }
        for h in hits
    ]
    summary = "; ".join(f"{h.datasource_name} › {h.document_title} ({h.score:.2f})" for h in hits)
    return AgentChunk(
        type=AgentChunkType.TOOL_RESULT,
        content=f"Context from {summary}",
        metadata={"kind": CONTEXT_KIND, "sources": sources},
    )


def _prompt(hits: list[Hit]) -> str:
    passages = "\n\n".join(
        f"[{i}] {h.datasource_name} / {h.document_title}:\n{h.text}" for i, h in enumerate(hits, start=1)
    )
    return (
        "Answer with the help of these passages from the user's datasources when they are relevant, and say which "
        f"passage ([n]) you used.\n\n{passages}"
    )


async def chat_retrieve(*, user_id: int, llm_id: int, datasource_ids: Sequence[int], text: str) -> Retrieved | None:
    """The context of one chat turn, or None when no datasource of the user's catalogue has anything to search."""
    if not datasource_ids:
        return None
    groups = await _in_db(_searchable)(llm_id=llm_id, datasource_ids=datasource_ids)
    if not groups:
        return None
    services = StudioServicesImpl("", user_id=user_id, source="chat")
    hits: list[Hit] = []
    try:
        for (embedding_llm, model), ids in groups.items():
            [vector] = await services.embed(embedding_llm, [text], model=model)
            hits += await _in_db(_nearest)(
                datasource_ids=ids,
                llm_id=embedding_llm,
                model=model,
                vector=vector,
                k=settings.FJORDGATE_RETRIEVAL_TOP_K,
                min_score=settings.FJORDGATE_RETRIEVAL_MIN_SCORE,
            )
    except ServiceError as exc:
        failed = AgentChunk(
            type=AgentChunkType.TOOL_RESULT,
            content=f"No datasource context: {exc}",
            metadata={"kind": CONTEXT_KIND, "sources": [], "error": str(exc)},
        )
        return Retrieved(chunk=failed)
    hits = sorted(hits, key=lambda h: -h.score)[: settings.FJORDGATE_RETRIEVAL_TOP_K]
    if not hits:
        empty = AgentChunk(
            type=AgentChunkType.TOOL_RESULT,
            content="No datasource passage matched this message.",
            metadata={"kind": CONTEXT_KIND, "sources": []},
        )
        return Retrieved(chunk=empty)
    return Retrieved(chunk=_shown(hits), prompt=_prompt(hits))
