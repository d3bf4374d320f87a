"""AWS Bedrock Runtime's wire format: SigV4-signed requests, `{"message"}` errors named by `x-amzn-ErrorType`,
and the binary event stream (`application/vnd.amazon.eventstream`) of `converse-stream`.

The signature is checked the way AWS does it, with botocore's own signer: the canonical request is rebuilt from
the path as sent (`raw_path`), the query, the headers the client listed in `SignedHeaders` and the body, under
the date of its `x-amz-date` (at most 5 minutes off, as at AWS), then the signatures are compared in constant
time. The mock knows one key pair (`MockSettings.aws_credentials`, `ACCESS_KEY_ID:SECRET`).
"""

from __future__ import annotations

import binascii
import hmac
import re
import struct
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.datastructures import Headers

EVENT_STREAM = b"application/vnd.amazon.eventstream"
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z-]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;.-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
_MAX_SKEW_S = 300


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status) or ("InternalServerException" if status >= 500 else "ValidationException")


class BedrockFormat:
    """The `VendorFormat` of bedrock-runtime: headers are checked here, the signature by `verify_signature`."""

    request_id_header = b"x-amzn-requestid"

    def reject(self, headers: Headers, require_key: str | None) -> tuple[int, str, str | None] | None:
        auth = headers.get("authorization", "")
        if not auth:
            return 403, "Missing Authentication Token", None
        if not _AUTH.fullmatch(auth.strip()) or not headers.get("x-amz-date"):
            return 403, "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.", None
        return None

    def error_body(self, status: int, message: str, *, request_id: str, param: str | None, code: str | None) -> bytes:
        return orjson.dumps({"message": message})

    def stream_error(self, request_id: str) -> bytes:
        payload = {"message": "The model stream failed (mock upstream fault).", "originalStatusCode": 500}
        return exception_frame("modelStreamErrorException", payload)

    def invalid_json_message(self) -> str:
        return "Malformed input request, please reformat your input and try again."

    def fault_message(self, status: int) -> str:
        if status == 429:
            return "Too many requests, please wait before trying again. (mock upstream fault)"
        return f"{error_type(status)} (mock upstream fault)"


def verify_signature(
    *, method: str, raw_path: bytes, query: bytes, headers: Headers, body: bytes, credentials: str, now: datetime
) -> str | None:
    """None when the request is signed with `credentials`, else the message AWS would answer with 403."""
    match = _AUTH.fullmatch(headers.get("authorization", "").strip())
    if match is None:
        return "Missing Authentication Token"
    key_id, _, secret = credentials.partition(":")
    if match["key"] != key_id:
        return "The security token included in the request is invalid."
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        return "X-Amz-Date is not a valid ISO 8601 basic timestamp."
    if abs((now - signed_at).total_seconds()) > _MAX_SKEW_S or stamp[:8] != match["date"]:
        return "Signature expired: the request's date is more than 5 minutes from the server's time."
    names = match["headers"].split(";")
    url = "http://" + headers.get("host", "") + raw_path.decode("latin-1") + (f"?{query.decode()}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={n: headers.get(n, "") for n in names})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key_id, secret), match["service"], match["region"])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return None


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and headers length, CRC), string headers, payload, CRC."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + b"\x07" + struct.pack("!H", len(value)) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, orjson.dumps(payload))


def exception_frame(exception_type: str, payload: dict[str, Any]) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, orjson.dumps(payload))
