"""The control plane's HTTPS settings, from the environment (`base.py` applies them).

Deployed, the control plane sits behind a proxy that ends TLS and speaks plain HTTP to uvicorn; `fjordgate up` and
`make up` serve http://127.0.0.1 with no TLS at all. So nothing here is on by default: an operator says where the
control plane is reached (`FJORDGATE_PUBLIC_URL`) and, when a proxy ends TLS, which header it sets to say so
(`FJORDGATE_PROXY_SSL_HEADER`):

- a public URL in https makes the session and CSRF cookies `Secure` (a browser never sends them over plain
  HTTP, where anyone on the path could read the session) and turns HSTS on (`Strict-Transport-Security`, a year
  unless `FJORDGATE_HSTS_SECONDS` says otherwise; Django sends it on HTTPS requests only); its origin is trusted
  for CSRF and its host allowed, next to `FJORDGATE_CSRF_TRUSTED_ORIGINS` and `FJORDGATE_ALLOWED_HOSTS`;
- `FJORDGATE_SECURE_COOKIES` overrides the cookies' flag either way (e.g. TLS without a public URL set);
- the proxy header is trusted only when named: Django then takes a request whose header says `https` as HTTPS
  (HSTS sent, `request.is_secure()`, CSRF's Referer check), which is right only when the proxy always sets or
  overwrites it, so it is never guessed;
- `FJORDGATE_SSL_REDIRECT` sends plain-HTTP requests to HTTPS (off: proxies usually redirect themselves, and
  health probes come in plain HTTP).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fjordgate.env import ConfigError, env_bool, env_header_name, env_int, env_url

__all__ = ["HSTS_DEFAULT_SECONDS", "https_settings"]

HSTS_DEFAULT_SECONDS = 365 * 24 * 3600
HSTS_MAX_SECONDS = 2 * 10**8  # above any max-age a browser keeps; what `fjordgate`'s preflight checks too


def https_settings(*, allowed_hosts: list[str], csrf_trusted_origins: list[str]) -> dict[str, Any]:
    """Django's HTTPS settings by name, plus `ALLOWED_HOSTS` and `CSRF_TRUSTED_ORIGINS` with the public URL's."""
    public_url = env_url("FJORDGATE_PUBLIC_URL", ("http", "https"))
    if public_url is not None and "," in public_url:
        raise ConfigError("FJORDGATE_PUBLIC_URL", f"give one URL, got {public_url!r}")
    parts = urlsplit(public_url) if public_url else None
    https = parts is not None and parts.scheme == "https"
    secure = env_bool("FJORDGATE_SECURE_COOKIES", https)
    hsts = env_int("FJORDGATE_HSTS_SECONDS", HSTS_DEFAULT_SECONDS if secure else 0, minimum=0, maximum=HSTS_MAX_SECONDS)
    proxy_header = env_header_name("FJORDGATE_PROXY_SSL_HEADER")
    hosts, origins = list(allowed_hosts), list(csrf_trusted_origins)
    if parts is not None:
        if parts.hostname and parts.hostname not in hosts:
            hosts.append(parts.hostname)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in origins:
            origins.append(origin)
    return {
        "ALLOWED_HOSTS": hosts,
        "CSRF_TRUSTED_ORIGINS": origins,
        "SESSION_COOKIE_SECURE": secure,
        "CSRF_COOKIE_SECURE": secure,
        "SECURE_HSTS_SECONDS": hsts,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": env_bool("FJORDGATE_HSTS_INCLUDE_SUBDOMAINS", False),
        "SECURE_HSTS_PRELOAD": env_bool("FJORDGATE_HSTS_PRELOAD", False),
        "SECURE_PROXY_SSL_HEADER": (
            ("HTTP_" + proxy_header.upper().replace("-", "_"), "https") if proxy_header is not None else None
        ),
        "SECURE_SSL_REDIRECT": env_bool("FJORDGATE_SSL_REDIRECT", False),
    }
