"""The form that adds a document: pasted text or an uploaded UTF-8 text file, bounded in size before it is read."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from .models import Document
from .services import document_text_check

__all__ = ["DocumentAddForm", "uploaded_text"]


def uploaded_text(upload: Any) -> str:
    """A text file's content; refused before reading when its bytes could not fit the character limit (a UTF-8
    character is at most four bytes), and when it is not UTF-8 text or not text PostgreSQL can store (NUL is valid
    UTF-8): checked here too, so the API names the `file` field rather than the whole request."""
    limit = settings.FJORDGATE_RETRIEVAL_MAX_DOCUMENT_CHARS
    if upload.size > 4 * limit:
        raise ValidationError(
            f"The file has {upload.size:,} bytes; a datasource takes documents of at most {limit:,} characters.",
            code="too_large",
        )
    try:
        text = bytes(upload.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("The file is not UTF-8 text.", code="not_text") from None
    return document_text_check(text)


class DocumentAddForm(forms.ModelForm):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16}), required=False, strip=False, help_text="Paste the text here…"
    )
    file = forms.FileField(required=False, help_text="…or upload a UTF-8 text file (.txt, .md)")

    class Meta:
        model = Document
        fields = ["datasource", "title"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("file")
        try:
            text = uploaded_text(upload) if upload else cleaned.get("text") or ""
            cleaned["text"] = document_text_check(text)
        except ValidationError as exc:
            self.add_error("file" if upload else "text", exc)
            return cleaned
        if upload and not cleaned.get("title"):
            cleaned["title"] = upload.name
        datasource = cleaned.get("datasource")
        if datasource is not None and datasource.embedding_llm_id is None:
            self.add_error("datasource", f"Datasource {datasource.slug} has no embedding LLM: choose one first.")
        return cleaned
