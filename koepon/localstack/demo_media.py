"""Small real media for the demo's content objects (local only): the seed records reward objects
in Storage without bytes, and `koepon up` writes these for them, so that the console's reveal and
reward box show an image and play a sound instead of a broken file."""

from __future__ import annotations

import struct
import zlib


def png(width: int = 240, height: int = 135) -> bytes:
    """A PNG of a pink-to-violet gradient."""
    line = bytes(c for x in range(width) for c in (232 - x * 100 // width, 69, 122 + x * 100 // width))
    rows = (b"\x00" + line) * height  # filter byte 0, then RGB pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def mp3(seconds: float = 1.0) -> bytes:
    """An MP3 of silence: MPEG-1 Layer III frames, 44.1 kHz mono at 128 kbit/s, whose all-zero side
    information decodes to silence; a player reads its duration."""
    header = bytes([0xFF, 0xFB, 0x90, 0xC0])  # sync, MPEG-1, layer III, no CRC; 128 kbit/s, 44.1 kHz; mono
    frame = header + bytes(144 * 128_000 // 44_100 - len(header))  # 417 bytes a frame, 1152 samples
    return frame * round(seconds * 44_100 / 1152)


def demo_bytes(bucket: str, name: str) -> bytes:
    """The demo file for a seeded object: real media for images and audio, a line of text otherwise."""
    ext = name.rsplit(".", 1)[-1].lower()
    if ext == "png":
        return png()
    if ext == "mp3":
        return mp3()
    return f"Koepon demo reward: {bucket}/{name}\n".encode()
