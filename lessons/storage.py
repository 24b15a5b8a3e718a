"""Recording storage in the S3-compatible bucket of ``RECORDING_S3_*`` (AWS Signature Version 4):

- a presigned GetObject URL, valid for a few minutes, handed to a participant who opens a recording
  (the bucket stays private; the link in the page is ours and checks who asks);
- one signed DeleteObject request after the retention period.

LiveKit's egress writes the files. Path-style addressing is used with a custom endpoint (MinIO,
Ceph, R2...), virtual-hosted style on AWS.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp

from marketplace.settings import Settings, get_settings

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALGORITHM = "AWS4-HMAC-SHA256"
PRESIGN_SECONDS = 900  # a recording link works for 15 minutes after the participant clicks it


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _target(key: str, s: Settings) -> tuple[str, str, str]:
    """Host, canonical path and base URL of ``key`` in the bucket."""
    region = s.recording_s3_region or "us-east-1"
    if s.recording_s3_endpoint:
        base = s.recording_s3_endpoint.rstrip("/")
        host = base.split("://", 1)[-1].split("/", 1)[0]
        path = f"/{s.recording_s3_bucket}/{quote(key.lstrip('/'), safe='/-_.~')}"
        return host, path, f"{base}{path}"
    host = f"{s.recording_s3_bucket}.s3.{region}.amazonaws.com"
    path = f"/{quote(key.lstrip('/'), safe='/-_.~')}"
    return host, path, f"https://{host}{path}"


def _signature(s: Settings, now: datetime, canonical: str) -> tuple[str, str]:
    """The credential scope and the hex signature of a canonical request."""
    region = s.recording_s3_region or "us-east-1"
    day = now.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, now.strftime("%Y%m%dT%H%M%SZ"), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    k = _sign(("AWS4" + s.recording_s3_secret).encode(), day)
    k = _sign(_sign(_sign(k, region), "s3"), "aws4_request")
    return scope, hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()


def presigned_get(
    key: str,
    *,
    expires: int = PRESIGN_SECONDS,
    filename: str | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> str:
    """A query-string-signed GetObject URL for ``key`` (``UNSIGNED-PAYLOAD``, only ``host`` signed).
    ``filename`` asks the storage to serve it as a download with that name."""
    s = settings or get_settings()
    now = now or datetime.now(UTC)
    host, path, url = _target(key, s)
    region = s.recording_s3_region or "us-east-1"
    params = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{s.recording_s3_access_key}/{now.strftime('%Y%m%d')}/{region}/s3/aws4_request",
        "X-Amz-Date": now.strftime("%Y%m%dT%H%M%SZ"),
        "X-Amz-Expires": str(int(expires)),
        "X-Amz-SignedHeaders": "host",
    }
    if filename:
        params["response-content-disposition"] = f'attachment; filename="{filename}"'
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
    canonical = "\n".join(["GET", path, query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"])
    _scope, signature = _signature(s, now, canonical)
    return f"{url}?{query}&X-Amz-Signature={signature}"


def delete_request(
    key: str, *, settings: Settings | None = None, now: datetime | None = None
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a SigV4-signed DeleteObject for ``key``."""
    s = settings or get_settings()
    now = now or datetime.now(UTC)
    host, path, url = _target(key, s)
    headers = {"host": host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ")}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["DELETE", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, _EMPTY_SHA256]
    )
    scope, signature = _signature(s, now, canonical)
    headers["authorization"] = (
        f"{ALGORITHM} Credential={s.recording_s3_access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    del headers["host"]
    return url, headers


async def delete_object(key: str) -> None:
    """Delete one object; a missing object counts as deleted (S3 answers 204 either way)."""
    url, headers = delete_request(key)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.delete(url, headers=headers) as response,
    ):
        if response.status not in (200, 204, 404):
            raise RuntimeError(f"S3 DeleteObject answered {response.status}")
