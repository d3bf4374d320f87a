"""API of a datasource's documents: `GET|POST /api/v1/datasources/{id}/documents/` (list; add one as JSON
`{"title", "text"}` or a multipart `file`) and `DELETE .../documents/{document_id}/`. Administrators of the
datasource's namespace only: documents are what the chat will quote to every user the datasource is granted to."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from control_plane.catalog.models import Datasource
from control_plane.config.api import IsAdmin, actor_id, check_change
from control_plane.config.api_filters import request_access
from control_plane.config.parsers import BoundedJSONParser

from .forms import uploaded_text
from .models import Document
from .services import document_add, document_delete

__all__ = ["DatasourceDocumentView", "DatasourceDocumentsView"]


class DocumentSerializer(serializers.ModelSerializer):
    chunks = serializers.IntegerField(source="chunks.count", read_only=True)

    class Meta:
        model = Document
        fields = ["id", "datasource", "title", "chars", "chunks", "embedding_model", "dimensions", "created_at"]
        read_only_fields = fields


class DocumentInSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    text = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)
    file = serializers.FileField(required=False)


def _datasource(request: Any, pk: int, *, write: bool) -> Datasource:
    """The datasource, as a 404 to whoever may not see its namespace; a 403 to whoever may not change it."""
    datasource = get_object_or_404(request_access(request).filter_visible(Datasource.objects.all()), pk=pk)
    if write:
        check_change(request, Datasource, datasource.namespace)
    return datasource


class DatasourceDocumentsView(APIView):
    permission_classes = [IsAdmin]
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]

    @extend_schema(operation_id="datasources_documents_list", responses={200: DocumentSerializer(many=True)})
    def get(self, request, pk: int) -> Response:
        documents = Document.objects.filter(datasource=_datasource(request, pk, write=False)).order_by("id")
        return Response(DocumentSerializer(documents, many=True).data)

    @extend_schema(
        operation_id="datasources_documents_create",
        request={"application/json": DocumentInSerializer, "multipart/form-data": DocumentInSerializer},
        responses={201: DocumentSerializer},
    )
    def post(self, request, pk: int) -> Response:
        datasource = _datasource(request, pk, write=True)
        incoming = DocumentInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data: dict[str, Any] = incoming.validated_data
        upload = data.get("file")
        if upload is None and "text" not in data:
            raise ValidationError({"text": "Send the document as `text` or as a multipart `file`."})
        try:
            text = uploaded_text(upload) if upload is not None else data["text"]
        except ValidationError as exc:
            raise ValidationError({"file": exc.messages}) from None
        title = data["title"] or (upload.name if upload is not None else "")
        document = document_add(datasource=datasource, title=title, text=text, actor_id=actor_id(request))
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)


class DatasourceDocumentView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(operation_id="datasources_documents_destroy", responses={204: None})
    def delete(self, request, pk: int, document_id: int) -> Response:
        datasource = _datasource(request, pk, write=True)
        document_delete(document=get_object_or_404(Document, pk=document_id, datasource=datasource))
        return Response(status=status.HTTP_204_NO_CONTENT)
