"""Datasource documents against real PostgreSQL (with and without pgvector ranking) and the real mock LLM in its own
process: documents are chunked and embedded through the studio's accounted LLM path, a question finds its passage,
oversized uploads are refused before anything is embedded, and the embedding LLM must be trusted with the data."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from control_plane.analytics.models import AnalyticsEvent
from control_plane.catalog.services import datasource_create
from control_plane.llms.services import llm_create
from control_plane.plugins.studio_services import StudioServicesImpl
from control_plane.retrieval.models import Chunk, Document
from control_plane.retrieval.selectors import chunks_nearest, pgvector_enabled
from control_plane.retrieval.services import document_add

from .conftest import EMBEDDER, EXPENSES, HANDBOOK, LEAVE, OFFICE
from .conftest import mock_requests as _mock_requests

pytestmark = pytest.mark.django_db(transaction=True)  # the studio services use their own threads


@pytest.mark.parametrize("pgvector", [True, False], ids=["pgvector", "python-cosine"])
def test_an_added_document_is_chunked_embedded_and_its_relevant_chunk_found(world, settings, pgvector):
    settings.FJORDGATE_RETRIEVAL_PGVECTOR = pgvector
    assert pgvector_enabled() is pgvector  # the embedded PostgreSQL ships pgvector; the migration installed it
    document = document_add(datasource=world["handbook"], title="Staff handbook", text=HANDBOOK)
    chunks = list(Chunk.objects.filter(document=document).order_by("position"))
    assert [c.text for c in chunks] == [LEAVE, OFFICE, EXPENSES]
    assert document.dimensions == 1536 and all(len(c.embedding) == 1536 for c in chunks)
    # one embeddings call for the whole document, accounted like any studio call of the embedding LLM
    [sent] = _mock_requests(world, "/v1/embeddings")
    assert sent["body"]["input"] == [LEAVE, OFFICE, EXPENSES] and sent["body"]["model"] == EMBEDDER
    row = AnalyticsEvent.objects.get()
    assert (row.edge_id, row.llm_id, row.status_code, row.prompt_tokens > 0) == (
        "studio",
        world["embedder"].pk,
        200,
        True,
    )
    [question] = async_to_sync(StudioServicesImpl().embed)(world["embedder"].pk, [OFFICE], model=EMBEDDER)
    hits = chunks_nearest(
        datasource_ids=[world["handbook"].pk],
        llm_id=world["embedder"].pk,
        model=EMBEDDER,
        vector=question,
        k=2,
        min_score=0.3,
    )
    assert [(h.text, h.document_title, h.datasource_slug) for h in hits] == [
        (OFFICE, "Staff handbook", "handbook")
    ]  # the mock's vectors of other texts are near-orthogonal: below the minimum score
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_an_oversized_upload_is_a_clear_400_or_form_error_and_nothing_is_embedded(
    world, settings, admin_api, admin_user
):
    settings.FJORDGATE_RETRIEVAL_MAX_DOCUMENT_CHARS = 100
    url = f"/api/v1/datasources/{world['handbook'].pk}/documents/"
    too_long = admin_api.post(url, {"title": "Big", "text": "x" * 101}, format="json")
    assert too_long.status_code == 400
    assert "at most 100" in too_long.json()["message"]
    big_file = SimpleUploadedFile("big.txt", b"y" * 401, content_type="text/plain")
    refused = admin_api.post(url, {"file": big_file}, format="multipart")
    assert refused.status_code == 400 and "at most 100 characters" in refused.json()["message"]
    admin = Client()
    admin.force_login(admin_user)
    form = admin.post(
        "/admin/retrieval/document/add/", {"datasource": world["handbook"].pk, "title": "Big", "text": "z" * 101}
    )
    assert form.status_code == 200 and "at most 100" in form.content.decode()
    assert not Document.objects.exists() and _mock_requests(world, "/v1/embeddings") == []
    # within the limit, both paths add the document
    added = admin_api.post(url, {"file": SimpleUploadedFile("leave.txt", LEAVE.encode())}, format="multipart")
    assert added.status_code == 201 and added.json()["title"] == "leave.txt" and added.json()["chunks"] == 1
    ok = admin.post("/admin/retrieval/document/add/", {"datasource": world["handbook"].pk, "text": OFFICE})
    assert ok.status_code == 302 and Document.objects.count() == 2
    listing = admin.get("/admin/retrieval/document/").content.decode()
    assert "leave.txt" in listing and "Untitled" in listing
    shown = admin.get(f"/admin/retrieval/document/{Document.objects.get(title='leave.txt').pk}/change/")
    assert shown.status_code == 200 and EMBEDDER in shown.content.decode()


def test_a_datasource_refuses_an_embedding_llm_less_private_than_itself(world):
    from control_plane.catalog.services import datasource_update

    with pytest.raises(ValidationError, match="below this datasource's 60"):
        datasource_update(datasource=world["handbook"], data={"privacy_score": 60})


def test_a_gemini_embedding_llm_embeds_in_geminis_own_format(world):
    gemini = llm_create(
        data={
            "name": "Gemini",
            "slug": "gemini",
            "vendor": "google",
            "api_endpoint": world["mock"],
            "api_key": "gemini-key",
            "default_model": "text-embedding-004",
        }
    )
    notes = datasource_create(data={"name": "Notes", "slug": "notes", "embedding_llm_id": gemini.pk})
    document = document_add(datasource=notes, title="Notes", text=HANDBOOK)
    assert (document.embedding_model, document.dimensions, document.chunks.count()) == ("text-embedding-004", 768, 3)
    [sent] = _mock_requests(world, "/v1beta/models/text-embedding-004:batchEmbedContents")
    assert [r["content"]["parts"][0]["text"] for r in sent["body"]["requests"]] == [LEAVE, OFFICE, EXPENSES]


def test_an_upload_holding_nul_is_a_400_naming_the_file_or_a_form_error_and_nothing_is_embedded(
    world, admin_api, admin_user
):
    """NUL is valid UTF-8, so a binary-ish "text" file decoded fine and reached PostgreSQL, which refused the chunk
    on insert: a 500 from the API and the admin, after the embeddings call had been paid for."""
    url = f"/api/v1/datasources/{world['handbook'].pk}/documents/"
    upload = SimpleUploadedFile("leave.txt", LEAVE.encode() + b"\x00\x00trailer", content_type="text/plain")
    refused = admin_api.post(url, {"file": upload}, format="multipart")
    assert refused.status_code == 400
    assert "NUL" in refused.json()["extra"]["fields"]["file"][0]
    admin = Client()
    admin.force_login(admin_user)
    form = admin.post(
        "/admin/retrieval/document/add/",
        {"datasource": world["handbook"].pk, "file": SimpleUploadedFile("leave.txt", b"a\x00b")},
    )
    assert form.status_code == 200 and "NUL" in form.content.decode()
    assert not Document.objects.exists() and _mock_requests(world, "/v1/embeddings") == []
    # a studio caller of the service is held to the same rule
    with pytest.raises(ValidationError, match="NUL"):
        document_add(datasource=world["handbook"], title="t", text="a\x00b")
