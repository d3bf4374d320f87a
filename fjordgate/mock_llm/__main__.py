"""`python -m fjordgate.mock_llm`: serve the mock upstream under uvicorn."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from .app import create_app
from .faults import FaultSpecError
from .settings import DEFAULT_AWS_CREDENTIALS, MockSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fjordgate.mock_llm",
        description="Serve an OpenAI-, Anthropic- and Gemini-compatible mock LLM upstream (see docs/mock-llm.md).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="port to bind (default 9100)")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before every response starts")
    parser.add_argument("--ttft-ms", type=int, default=0, help="streams: delay between the headers and the first event")
    parser.add_argument("--chunk-delay-ms", type=int, default=0, help="streams: delay between events")
    parser.add_argument("--chunks", type=int, default=None, help="streams: merge content deltas into at most N events")
    parser.add_argument(
        "--aws-credentials",
        default=DEFAULT_AWS_CREDENTIALS,
        help="ACCESS_KEY_ID:SECRET the Bedrock routes verify SigV4 signatures against",
    )
    parser.add_argument(
        "--vertex-public-key",
        default=None,
        metavar="PEM_FILE",
        help="public key (PEM) POST /token verifies service-account assertions against (Vertex AI routes)",
    )
    parser.add_argument("--vertex-token-ttl-s", type=int, default=3600, help="lifetime of issued access tokens")
    parser.add_argument("--require-key", default=None, help="answer 401 unless requests carry this API key")
    parser.add_argument("--fault", default="", help="default fault spec for every request (x-mock-fault syntax)")
    parser.add_argument("--log-size", type=int, default=1000, help="requests kept for GET /_mock/requests (0: none)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    parser.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        public_key = None
        if args.vertex_public_key:
            with open(args.vertex_public_key, encoding="ascii") as pem:
                public_key = pem.read()
        settings = MockSettings(
            latency_ms=args.latency_ms,
            ttft_ms=args.ttft_ms,
            chunk_delay_ms=args.chunk_delay_ms,
            chunks=args.chunks,
            require_key=args.require_key,
            aws_credentials=args.aws_credentials,
            vertex_public_key=public_key,
            vertex_token_ttl_s=args.vertex_token_ttl_s,
            fault=args.fault,
            log_size=args.log_size,
        )
        app = create_app(settings)
    except (OSError, ValueError, FaultSpecError) as exc:
        parser.error(str(exc))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)


if __name__ == "__main__":
    main()
