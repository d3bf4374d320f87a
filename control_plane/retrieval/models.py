"""What a datasource knows: the documents added to it, cut into chunks, each with the vector its embedding model gave.

Vectors are PostgreSQL `double precision[]` columns whatever the deployment: an embedding model's dimensions differ
from another's, and a datasource may switch models, so one fixed-size `vector(n)` column would not fit every row.
Where the pgvector extension is installed, the search casts them to `vector` and ranks with its cosine operator in
the database (`selectors.py`); elsewhere it ranks in Python. Each document keeps the model that embedded it, so a
search compares only vectors of the same model.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class Document(models.Model):
    datasource = models.ForeignKey("catalog.Datasource", on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=200, blank=True, help_text="Empty: the uploaded file's name")
    chars = models.PositiveIntegerField(default=0)
    embedding_llm = models.ForeignKey("llms.LLM", null=True, on_delete=models.SET_NULL, related_name="+")
    embedding_model = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField()
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["datasource", "title", "id"]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    embedding = ArrayField(models.FloatField())

    class Meta:
        ordering = ["document", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="one_chunk_per_position")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"
