"""Decoding item content, as the indexing pipeline does: base64, then one of five compressions.

Small content stays in memory; anything larger goes to a file under the data directory, so an
item pushed through a 256 MB container never sits in the emulator's memory.
"""

from __future__ import annotations

import base64
import binascii
import lzma
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from emulator.limits import MIB
from producers.private_files import private_directory

CHUNK_BYTES = MIB
"""Compressed bytes fed to a decompressor at a time."""
IN_MEMORY_CONTENT_BYTES = MIB
"""Decoded content up to this size stays in memory; larger content is spilled to a file."""

_ZLIB_WINDOW_BITS = {
    "ZLIB": zlib.MAX_WBITS,
    "GZIP": 16 + zlib.MAX_WBITS,
    # DEFLATE as RFC 1951, without zlib's header. UNCONFIRMED whether the service also takes a
    # zlib-wrapped stream under this name; accepting only the raw form is the stricter choice.
    "DEFLATE": -zlib.MAX_WBITS,
}


class ContentError(ValueError):
    """Content the indexing pipeline cannot decode."""


@dataclass(slots=True)
class Content:
    """An item's decoded content, in memory (`data`) or in a file (`path`)."""

    data: bytes | None
    path: Path | None
    size: int

    def read(self) -> bytes:
        """All the bytes (from the file when spilled)."""
        return self.data if self.data is not None else self.path.read_bytes()  # type: ignore[union-attr]

    def chunks(self) -> Iterator[bytes]:
        """The bytes, a chunk at a time."""
        if self.data is not None:
            yield self.data
            return
        with open(self.path, "rb") as stream:  # type: ignore[arg-type]
            while chunk := stream.read(CHUNK_BYTES):
                yield chunk

    def discard(self) -> None:
        """Delete the spilled file, if any (the item was replaced or deleted)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def text_content(text: str) -> Content:
    """The content of an item pushed with `data`."""
    data = text.encode("utf-8", "surrogatepass")
    return Content(data, None, len(data))


def decode_base64(value: str, compression_type: str, directory: Path) -> Content:
    """The content of an item pushed with `compressedBinaryData`."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContentError(f"compressedBinaryData is not valid base64: {exc}") from None
    slices = (raw[start : start + CHUNK_BYTES] for start in range(0, len(raw), CHUNK_BYTES))
    return decode(slices, compression_type, directory)


def decode_file(blob: Path, compression_type: str, directory: Path) -> Content:
    """The content of an item pushed with `compressedBinaryDataFileId` (the container's raw bytes)."""
    with open(blob, "rb") as stream:
        return decode(iter(lambda: stream.read(CHUNK_BYTES), b""), compression_type, directory)


def decode(chunks: Iterable[bytes], compression_type: str, directory: Path) -> Content:
    """Decompress `chunks` (as `compression_type` says) into memory or a file under `directory`."""
    sink = _Sink(directory)
    try:
        if compression_type == "UNCOMPRESSED":
            for chunk in chunks:
                sink.write(chunk)
        else:
            _decompress(chunks, compression_type, sink)
    except BaseException:
        sink.abandon()
        raise
    return sink.close()


def _decompress(chunks: Iterable[bytes], compression_type: str, sink: _Sink) -> None:
    is_lzma = compression_type == "LZMA"
    # FORMAT_AUTO: both the .xz container and the legacy .lzma ("alone") format.
    decompressor = lzma.LZMADecompressor() if is_lzma else zlib.decompressobj(_ZLIB_WINDOW_BITS[compression_type])
    try:
        for chunk in chunks:
            if decompressor.eof:
                break
            sink.write(decompressor.decompress(chunk))
        if not is_lzma:
            sink.write(decompressor.flush())  # type: ignore[union-attr]
    except (zlib.error, lzma.LZMAError) as exc:
        raise ContentError(f"the content is not valid {compression_type} data: {exc}") from None
    if not decompressor.eof:
        raise ContentError(f"the {compression_type} content is truncated")


class _Sink:
    """Collects decoded bytes in memory, moving them to a file once they outgrow it."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._buffer = bytearray()
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._file is None:
            self._buffer += data
            if len(self._buffer) <= IN_MEMORY_CONTENT_BYTES:
                return
            private_directory(self._directory)
            self._file = tempfile.NamedTemporaryFile(dir=self._directory, suffix=".content", delete=False)
            data, self._buffer = bytes(self._buffer), bytearray()
        self._file.write(data)

    def close(self) -> Content:
        if self._file is None:
            return Content(bytes(self._buffer), None, self._size)
        self._file.close()
        return Content(None, Path(self._file.name), self._size)

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
            os.unlink(self._file.name)
