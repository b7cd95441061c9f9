"""Request signatures: pushsync's own scheme and Contentful's request signing, both HMAC-SHA256.

pushsync: `X-Pushsync-Signature: t=<unix seconds>,v1=<hex>` where the hex is the HMAC of
`<t>.<raw body>`; several v1 values may be given while a secret is being rotated.

Contentful: `x-contentful-signature` is the hex HMAC of the canonical request: the method, the
encoded path, the signed headers (`x-contentful-signed-headers`, sorted, `name:value` joined by
`;`) and the raw body, joined by newlines; `x-contentful-timestamp` is in milliseconds.

Every comparison is constant-time, and no message names a secret or a signature value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

PUSHSYNC_HEADER = "x-pushsync-signature"
PUSHSYNC_SCHEME = "v1"
CONTENTFUL_SIGNATURE = "x-contentful-signature"
CONTENTFUL_SIGNED_HEADERS = "x-contentful-signed-headers"
CONTENTFUL_TIMESTAMP = "x-contentful-timestamp"
MILLISECONDS = 1000
# What JavaScript's encodeURI and encodeURIComponent leave as they are; Contentful signs the
# path as those functions encode it.
_ENCODE_URI_SAFE = ";,/?:@&=+$-_.!~*'()#"
_ENCODE_COMPONENT_SAFE = "-_.!~*'()"


class SignatureError(Exception):
    """The request is not signed by the holder of the secret, or not recently enough."""


def pushsync_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Pushsync-Signature header value for `body`, signed at `timestamp` (Unix seconds)."""
    return f"t={timestamp},{PUSHSYNC_SCHEME}={_hmac(secret, str(timestamp).encode() + b'.' + body)}"


def verify_pushsync(secret: str, header: str | None, body: bytes, *, now: float, tolerance: float) -> None:
    """Raise SignatureError unless `header` signs `body` with `secret` within `tolerance` seconds of `now`."""
    if not header:
        raise SignatureError("missing X-Pushsync-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == PUSHSYNC_SCHEME and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("malformed X-Pushsync-Signature header; expected t=<unix seconds>,v1=<hex HMAC-SHA256>")
    _check_age(now - timestamp, tolerance)
    expected = _hmac(secret, str(timestamp).encode() + b"." + body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("signature does not match the body")


def contentful_signature_headers(
    secret: str, method: str, path: str, headers: Mapping[str, str], body: bytes, timestamp_ms: int,
) -> dict[str, str]:
    """The headers Contentful adds to a request it signs (for tests and for signing samples by hand).

    `headers` are the request headers to sign; `timestamp_ms` is the signing time in milliseconds.
    """
    signed = {name.strip().lower(): value.strip() for name, value in headers.items()}
    signed[CONTENTFUL_TIMESTAMP] = str(timestamp_ms)
    names = sorted({*signed, CONTENTFUL_SIGNED_HEADERS})
    signed[CONTENTFUL_SIGNED_HEADERS] = ",".join(names)
    return {
        CONTENTFUL_SIGNATURE: _hmac(secret, _canonical_request(method, path, signed, body)),
        CONTENTFUL_SIGNED_HEADERS: signed[CONTENTFUL_SIGNED_HEADERS],
        CONTENTFUL_TIMESTAMP: signed[CONTENTFUL_TIMESTAMP],
    }


def verify_contentful(
    secret: str, method: str, path: str, headers: Mapping[str, str], body: bytes, *, now: float, tolerance: float,
) -> None:
    """Raise SignatureError unless Contentful signed this request with `secret` within `tolerance` seconds of `now`.

    `headers` must have lower-case names; `path` is the raw request path with its query string.
    """
    signature = headers.get(CONTENTFUL_SIGNATURE)
    names = [name.strip().lower() for name in headers.get(CONTENTFUL_SIGNED_HEADERS, "").split(",") if name.strip()]
    timestamp = headers.get(CONTENTFUL_TIMESTAMP, "")
    if not signature or not names or not timestamp.isdigit():
        raise SignatureError("missing Contentful signature headers (enable request verification on the webhook)")
    # Without the timestamp among the signed headers, an old request could be replayed with a new one.
    if CONTENTFUL_TIMESTAMP not in names or CONTENTFUL_SIGNED_HEADERS not in names:
        raise SignatureError("the Contentful signature does not cover its timestamp")
    missing = [name for name in names if name not in headers]
    if missing:
        raise SignatureError(f"signed header(s) missing from the request: {', '.join(missing)}")
    _check_age(now - int(timestamp) / MILLISECONDS, tolerance)
    signed = {name: headers[name].strip() for name in names}
    if not hmac.compare_digest(_hmac(secret, _canonical_request(method, path, signed, body)), signature):
        raise SignatureError("signature does not match the request")


def _canonical_request(method: str, path: str, signed: Mapping[str, str], body: bytes) -> bytes:
    header_text = ";".join(f"{name}:{signed[name]}" for name in sorted(signed))
    return "\n".join([method.upper(), _encode_path(path), header_text]).encode() + b"\n" + body


def _encode_path(path: str) -> str:
    pathname, _, query = path.partition("?")
    if query:
        pathname = f"{pathname}?{quote(query, safe=_ENCODE_COMPONENT_SAFE)}"
    return quote(pathname, safe=_ENCODE_URI_SAFE)


def _check_age(age: float, tolerance: float) -> None:
    if abs(age) > tolerance:
        raise SignatureError(f"signature timestamp is {abs(age):.0f} s from now, outside the {tolerance:.0f} s tolerance")


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
