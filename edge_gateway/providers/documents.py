"""Documents (PDFs) across dialects, through Chat Completions' `file` part.

Why: every vendor reads PDFs (OpenAI chat `file` parts, Responses `input_file`, Anthropic `document` blocks,
Gemini `inlineData` of type `application/pdf`), so "summarise this PDF" must work whichever SDK the client uses
and whichever vendor serves the model. The translations all pass through Chat Completions, so the one common form
is the chat part `{"type": "file", "file": {"file_data": "data:<media type>;base64,<data>", "filename"}}`; these
helpers make and read it. A document known only by a vendor's own reference (an OpenAI file id, a Files API
URI) cannot reach another vendor: that is the client's 400, never a silent drop.
"""

from __future__ import annotations

from typing import Any

from ..errors import GatewayError

__all__ = ["file_part", "inline_document"]


def file_part(media_type: str, data: str, filename: str | None = None) -> dict[str, Any]:
    """A Chat Completions `file` part carrying base64 `data` of `media_type` inline."""
    file: dict[str, Any] = {"file_data": f"data:{media_type};base64,{data}"}
    if filename:
        file["filename"] = filename
    return {"type": "file", "file": file}


def inline_document(part: dict[str, Any], vendor: str, param: str = "messages") -> tuple[str, str, str | None]:
    """The media type, base64 data and file name of a chat `file` part (`file_data` a base64 `data:` URL, or bare
    base64 taken as a PDF); 400 for a file id: the vendor at the other end has no such file."""
    file = part.get("file")
    if not isinstance(file, dict):
        raise GatewayError.bad_request("a 'file' part needs a 'file' object", param=param)
    url = file.get("file_data")
    if not isinstance(url, str) or not url:
        raise GatewayError.bad_request(
            f"files must be sent inline ('file_data') to {vendor} models: file ids are not supported", param=param
        )
    media_type, data = url[5:].split(";base64,", 1) if url.startswith("data:") and ";base64," in url else ("", url)
    filename = file.get("filename")
    return media_type or "application/pdf", data, filename if isinstance(filename, str) else None
