"""Request signatures: pushsync's own scheme and Contentful's request signing, both HMAC-SHA256.

pushsync: `X-Pushsync-Signature: t=<unix seconds>,v1=<hex>` where the hex is the HMAC of
`<t>.<raw body>`; several v1 values may be given while a secret is being rotated.

Contentful: `x-contentful-signature` is the hex HMAC of the canonical request: the method, the
request target (path and query) encoded as Contentful's verifier encodes it, the signed headers
and the body, joined by newlines. The verification follows Contentful's own verifier
(`verifyRequest` of @contentful/node-apps-toolkit) step by step, so both take and refuse the
same requests (tests/producers/test_contentful_library.py compares them); the one difference is
that a timestamp further in the future than the tolerance is refused here, where the toolkit
takes it, since such a signature could be replayed until then.

Every comparison is constant-time, and no message names a secret or a signature value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote

PUSHSYNC_HEADER = "x-pushsync-signature"
PUSHSYNC_SCHEME = "v1"
CONTENTFUL_SIGNATURE = "x-contentful-signature"
CONTENTFUL_SIGNED_HEADERS = "x-contentful-signed-headers"
CONTENTFUL_TIMESTAMP = "x-contentful-timestamp"
MILLISECONDS = 1000
MAX_TIMESTAMP_DIGITS = 15
"""Unix times in seconds or milliseconds have 13 digits at most until the year 2286; longer ones
are refused before any arithmetic, so no size of number can break the check."""
SIGNATURE_HEX_LENGTH = 64
CONTENTFUL_MIN_SIGNED_HEADERS = 2
"""The toolkit refuses a signed-headers list of fewer entries (it always holds its own two)."""
CONTENTFUL_EARLIEST_MS = 1_577_836_800_000
"""The toolkit refuses timestamps before 2020-01-01 (in milliseconds)."""
CONTENTFUL_METHODS = frozenset({"GET", "PATCH", "HEAD", "POST", "DELETE", "OPTIONS", "PUT"})
# What JavaScript's encodeURI and Node's querystring.escape (like encodeURIComponent) leave as
# they are, beside letters, digits and `_.-~` (which Python's quote never encodes).
_ENCODE_URI_SAFE = ";,/?:@&=+$!*'()#"
_ESCAPE_QUERY_SAFE = "!*'()"
# JavaScript's String.prototype.trim removes these (WhiteSpace and LineTerminator); Python's
# str.strip differs (it removes U+001C-U+001F and U+0085, keeps U+FEFF).
_JS_WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
                 "\u2028\u2029\u202f\u205f\u3000\ufeff"
# Number.parseInt(text, 10): an optional sign, then the longest run of ASCII digits.
_JS_PARSE_INT = re.compile(r"([+-]?)([0-9]+)")
_ASCII_DIGITS = re.compile(r"[0-9]+")


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
        if name == "t" and _ASCII_DIGITS.fullmatch(value) and len(value) <= MAX_TIMESTAMP_DIGITS:
            timestamp = int(value)
        elif name == PUSHSYNC_SCHEME and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError(
            "malformed X-Pushsync-Signature header; expected t=<unix seconds, ASCII digits>,v1=<hex HMAC-SHA256>"
        )
    _check_age(now - timestamp, tolerance)
    expected = _hmac(secret, str(timestamp).encode() + b"." + body).encode()
    # Compared as bytes: the header may hold any text, and compare_digest refuses non-ASCII str.
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures):
        raise SignatureError("signature does not match the body")


def contentful_signature_headers(
    secret: str, method: str, path: str, headers: Mapping[str, str], body: bytes, timestamp_ms: int,
) -> dict[str, str]:
    """The headers Contentful adds to a request it signs (for tests and for signing samples by hand).

    `path` is the request target (path and query) as it will be sent; `headers` are the request
    headers to sign; `timestamp_ms` is the signing time in milliseconds.
    """
    signed = {_js_trim(name).lower(): _js_trim(value) for name, value in headers.items()}
    names = sorted({*signed, CONTENTFUL_SIGNED_HEADERS, CONTENTFUL_TIMESTAMP})
    signed[CONTENTFUL_TIMESTAMP] = str(timestamp_ms)
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

    `path` is the request target exactly as received (raw path, then `?` and the raw query when
    there is one); `headers` must have lower-case names.
    """
    normalized = {_js_trim(name).lower(): _js_trim(value) for name, value in headers.items()}
    signature = normalized.get(CONTENTFUL_SIGNATURE)
    listed = normalized.get(CONTENTFUL_SIGNED_HEADERS, "").split(",")
    timestamp_ms = _js_parse_int(normalized.get(CONTENTFUL_TIMESTAMP, ""))
    if signature is None or CONTENTFUL_SIGNED_HEADERS not in normalized or CONTENTFUL_TIMESTAMP not in normalized:
        raise SignatureError("missing Contentful signature headers (enable request verification on the webhook)")
    if len(signature) != SIGNATURE_HEX_LENGTH:
        raise SignatureError(f"x-contentful-signature is not {SIGNATURE_HEX_LENGTH} characters long")
    if len(listed) < CONTENTFUL_MIN_SIGNED_HEADERS:
        raise SignatureError(f"x-contentful-signed-headers lists fewer than {CONTENTFUL_MIN_SIGNED_HEADERS} headers")
    if timestamp_ms is None or timestamp_ms <= CONTENTFUL_EARLIEST_MS:
        raise SignatureError("x-contentful-timestamp is not a time in milliseconds since 1970")
    if method not in CONTENTFUL_METHODS or not path.startswith("/"):
        raise SignatureError("the request cannot be verified: unknown method or a target that is not a path")
    # The toolkit refuses an age equal to its time to live; it does not look at the future (see above).
    _check_age(now - timestamp_ms / MILLISECONDS, tolerance, inclusive=True)
    # Only listed headers present in the request are signed; the timestamp and the list itself
    # are always, in the forms the toolkit recomputes: a tampered list or timestamp changes the HMAC.
    signed = {name: value for name, value in normalized.items() if name in listed}
    signed[CONTENTFUL_TIMESTAMP] = str(timestamp_ms)
    signed[CONTENTFUL_SIGNED_HEADERS] = ",".join(sorted({*signed, CONTENTFUL_SIGNED_HEADERS}))
    expected = _hmac(secret, _canonical_request(method, path, signed, body))
    # Compared as UTF-8 bytes, as the toolkit does: the header may hold any text.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("signature does not match the request")


def _canonical_request(method: str, path: str, signed: Mapping[str, str], body: bytes) -> bytes:
    header_text = ";".join(f"{name}:{signed[name]}" for name in sorted(signed))
    # Every text here was decoded from the request's bytes (latin-1), so it encodes as Node's does.
    return "\n".join([method, _encode_target(path), header_text]).encode() + b"\n" + body


def _encode_target(target: str) -> str:
    """The target as the toolkit normalizes it: split at `?`, the text up to a second `?` is the
    query (anything after it is left out), the query escaped as a URI component, then the whole
    encoded as by encodeURI (so the query's escapes are escaped once more)."""
    parts = target.split("?")
    pathname, query = parts[0], parts[1] if len(parts) > 1 else ""
    if query:
        pathname = f"{pathname}?{quote(query, safe=_ESCAPE_QUERY_SAFE)}"
    return quote(pathname, safe=_ENCODE_URI_SAFE)


def _js_trim(text: str) -> str:
    return text.strip(_JS_WHITESPACE)


def _js_parse_int(text: str) -> int | None:
    """Number.parseInt(text, 10) for the values a timestamp check can take; None where it gives NaN
    or a number too long to be a time (refused either way)."""
    found = _JS_PARSE_INT.match(text.lstrip(_JS_WHITESPACE))
    if found is None or len(found.group(2).lstrip("0")) > MAX_TIMESTAMP_DIGITS:
        return None
    return int(found.group(1) + found.group(2))


def _check_age(age: float, tolerance: float, *, inclusive: bool = False) -> None:
    too_old = age >= tolerance if inclusive else age > tolerance
    if too_old:
        raise SignatureError(f"signature timestamp is {age:.0f} s old, outside the {tolerance:.0f} s tolerance")
    if -age > tolerance:
        raise SignatureError(f"signature timestamp is {-age:.0f} s in the future, outside the {tolerance:.0f} s tolerance")


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
