"""Recording storage: deleting an egress file from the S3-compatible bucket after its retention
period (``RECORDING_S3_*``), one signed DeleteObject request (AWS Signature Version 4).

LiveKit's egress writes the files; this module only removes them. Path-style addressing is used
with a custom endpoint (MinIO, Ceph, R2...), virtual-hosted style on AWS.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp

from marketplace.settings import Settings, get_settings

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def delete_request(
    key: str, *, settings: Settings | None = None, now: datetime | None = None
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a SigV4-signed DeleteObject for ``key``."""
    s = settings or get_settings()
    now = now or datetime.now(UTC)
    region = s.recording_s3_region or "us-east-1"
    if s.recording_s3_endpoint:
        base = s.recording_s3_endpoint.rstrip("/")
        host = base.split("://", 1)[-1].split("/", 1)[0]
        path = f"/{s.recording_s3_bucket}/{quote(key.lstrip('/'), safe='/-_.~')}"
        url = f"{base}{path}"
    else:
        host = f"{s.recording_s3_bucket}.s3.{region}.amazonaws.com"
        path = f"/{quote(key.lstrip('/'), safe='/-_.~')}"
        url = f"https://{host}{path}"
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["DELETE", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, _EMPTY_SHA256]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _sign(("AWS4" + s.recording_s3_secret).encode(), day)
    k = _sign(_sign(_sign(k, region), "s3"), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={s.recording_s3_access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
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
