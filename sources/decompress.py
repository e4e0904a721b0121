"""Incremental HTTP body decoding with bounded output per step.

httpx decodes a whole network chunk at once, so a small gzip bomb inflates to its full
size before any cap is checked. These decoders yield about `PIECE` bytes at a time, so
the caller can count decompressed bytes and stop as soon as a limit is passed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol

import brotli

from core.errors import SourceError

PIECE = 64 * 1024


class DecodeError(SourceError):
    """The body is not valid data in its declared content encoding."""


class Decoder(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _Identity:
    def decode(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _Zlib:
    def __init__(self, wbits: int, fallback_wbits: int | None = None) -> None:
        self._inflate = zlib.decompressobj(wbits)
        # "deflate" is sent both zlib-wrapped (as the RFC says) and raw (as some servers do).
        self._fallback_wbits = fallback_wbits

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            piece = self._inflate.decompress(data, PIECE)
        except zlib.error as error:
            if self._fallback_wbits is None:
                raise DecodeError(str(error)) from None
            self._inflate = zlib.decompressobj(self._fallback_wbits)
            self._fallback_wbits = None
            yield from self.decode(data)
            return
        self._fallback_wbits = None
        while True:
            if piece:
                yield piece
            tail = self._inflate.unconsumed_tail
            if not tail:
                return
            try:
                piece = self._inflate.decompress(tail, PIECE)
            except zlib.error as error:
                raise DecodeError(str(error)) from None

    def flush(self) -> Iterator[bytes]:
        try:
            # What zlib still holds after the last input is at most one back-reference.
            rest = self._inflate.flush()
        except zlib.error as error:
            raise DecodeError(str(error)) from None
        if rest:
            yield rest


class _Brotli:
    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            # The limit is soft (a piece may pass it by one internal buffer); empty input
            # drains what the decompressor still holds.
            piece = self._decompressor.process(data, output_buffer_limit=PIECE)
            while piece:
                yield piece
                piece = self._decompressor.process(b"", output_buffer_limit=PIECE)
        except brotli.error as error:
            raise DecodeError(str(error)) from None

    def flush(self) -> Iterator[bytes]:
        return iter(())


# What we announce in Accept-Encoding: exactly the encodings decoder() understands.
ACCEPT_ENCODING = "gzip, deflate, br"


def decoder(content_encoding: str) -> Decoder:
    """A decoder for a Content-Encoding header value; DecodeError names an unknown one."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Zlib(zlib.MAX_WBITS, fallback_wbits=-zlib.MAX_WBITS)
    if encoding == "br":
        return _Brotli()
    raise DecodeError(f"unsupported content encoding {content_encoding!r}")
