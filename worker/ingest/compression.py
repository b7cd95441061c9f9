"""Compressed message bodies: the codecs pushsync reads, each bounded by the message size limit.

pushsync's producers never compress, but any kombu publisher may set a `compression` header. kombu
decompresses a body before a consumer sees it, whole and without a limit, so a 16 KB body could
become gigabytes in the worker. `install()` replaces kombu's decoders with bounded ones for the
codecs below and refuses every other one; a body that fails surfaces as a decode error that
ingestion quarantines with its reason, and never stops the consumer.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any

from kombu import compression

from producers.events import MAX_MESSAGE_BYTES

CHUNK_BYTES = 64 * 1024
"""Input fed to a decompressor at a time, so a bomb is caught before it fills memory."""
LZMA_MEMLIMIT_BYTES = 128 * 1024 * 1024
"""Most memory an lzma decoder may take: twice what `xz -9` needs. A header may ask for a 4 GiB
dictionary, which the decoder allocates before it reads any data."""


class BodyError(ValueError):
    """A message body that cannot be turned into the JSON it should carry; the text is the reason."""


def _bounded(make: Callable[[], Any], name: str) -> Callable[[bytes], bytes]:
    def decode(body: bytes) -> bytes:
        decompressor = make()
        out = bytearray()
        try:
            for start in range(0, len(body), CHUNK_BYTES):
                out += decompressor.decompress(body[start:start + CHUNK_BYTES], MAX_MESSAGE_BYTES + 1 - len(out))
                if len(out) > MAX_MESSAGE_BYTES:
                    break
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            raise BodyError(f"body is not valid {name} data: {exc}") from None
        except MemoryError:  # the worker lacks memory for this body: not an outage of anything
            raise BodyError(f"{name} body needs more memory to decompress than this worker has") from None
        if len(out) > MAX_MESSAGE_BYTES:
            raise BodyError(f"{name} body decompresses to more than the {MAX_MESSAGE_BYTES:,}-byte message limit")
        return bytes(out)

    return decode


DECODERS: dict[str, Callable[[bytes], bytes]] = {
    # zlib.decompressobj with wbits 47 reads both zlib and gzip framing, as kombu's zlib alias may carry either.
    "application/x-gzip": _bounded(lambda: zlib.decompressobj(47), "zlib"),
    "application/x-bz2": _bounded(bz2.BZ2Decompressor, "bzip2"),
    "application/x-lzma": _bounded(lambda: lzma.LZMADecompressor(memlimit=LZMA_MEMLIMIT_BYTES), "lzma"),
}
ALIASES = {"gzip": "application/x-gzip", "zlib": "application/x-gzip", "bzip2": "application/x-bz2",
           "lzma": "application/x-lzma", "xz": "application/x-lzma"}


def _refuse(content_type: str) -> Callable[[bytes], bytes]:
    def decode(body: bytes) -> bytes:
        raise BodyError(f"compression {content_type!r} is not accepted (use one of {', '.join(sorted(ALIASES))})")

    return decode


def decompress(body: bytes, codec: str) -> bytes:
    """`body` decompressed by `codec` (a kombu alias or content type), within the message limit; raise BodyError."""
    name = ALIASES.get(codec, codec)
    return DECODERS.get(name, _refuse(codec))(body)


def install() -> None:
    """Make kombu use the bounded decoders, and refuse every codec they do not cover."""
    for content_type in list(compression._decoders):
        if content_type not in DECODERS:
            compression._decoders[content_type] = _refuse(content_type)
    for content_type, decoder in DECODERS.items():
        compression.register(compression._encoders.get(content_type, zlib.compress), decoder, content_type,
                             aliases=[alias for alias, target in ALIASES.items() if target == content_type])
