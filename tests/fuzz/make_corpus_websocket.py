#!/usr/bin/env python3
"""Write the seed corpus of fuzz_websocket into tests/fuzz/corpus/fuzz_websocket/.

Each file is the harness's input: max_message as u16le (0xffff meaning no limit), then a stream
of client frames as a browser would send them (masked), or as a broken client would. Run once
from anywhere; it rewrites the seeds it owns and leaves any other file in the directory alone.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_websocket")
NO_LIMIT = 0xFFFF
MASK = b"\x37\xfa\x21\x3d"  # RFC 6455 5.7's examples' mask

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload=b"", fin=True, masked=True, mask=MASK, form=None, rsv=0, length=None):
    """A client frame; form forces the length's form (7, 16 or 64 bits), length lies about it."""
    payload = payload.encode() if isinstance(payload, str) else payload
    n = len(payload) if length is None else length
    if form is None:
        form = 7 if n <= 125 else 16 if n <= 0xFFFF else 64
    out = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if masked else 0
    if form == 7:
        out += bytes([m | n])
    elif form == 16:
        out += bytes([m | 126]) + struct.pack(">H", n)
    else:
        out += bytes([m | 127]) + struct.pack(">Q", n)
    if masked:
        out += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return out + payload


def seed(max_message, *frames):
    return struct.pack("<H", max_message) + b"".join(frames)


def close(code, reason=b""):
    return struct.pack(">H", code) + reason


SEEDS = {
    "rfc_hello": seed(1024, frame(TEXT, "Hello")),
    "rfc_pong": seed(1024, frame(PONG, "Hello")),
    "fragmented_with_ping": seed(1024, frame(TEXT, "Hel", fin=False), frame(PING, "ping"),
                                 frame(CONT, "lo", fin=False), frame(PONG),
                                 frame(CONT, " world"), frame(BINARY, b"\x00\xff")),
    "utf8_split": seed(1024, frame(TEXT, b"a\xc3", fin=False), frame(CONT, b"\xa9\xe2\x82", fin=False),
                       frame(CONT, b"\xac\xf0\x9f", fin=False), frame(CONT, b"\x98\x80z")),
    "utf8_bad_across": seed(1024, frame(TEXT, b"ok \xed", fin=False), frame(CONT, b"\xa0\x80")),
    "utf8_cut_at_fin": seed(1024, frame(TEXT, b"cut \xe2\x82")),
    "utf8_overlong": seed(1024, frame(TEXT, b"\xc0\x80")),
    "utf8_too_high": seed(1024, frame(TEXT, b"\xf4\x90\x80\x80")),
    "binary_16": seed(1024, frame(BINARY, bytes(range(200)))),
    "binary_64_form": seed(1024, frame(BINARY, b"long form", form=64)),
    "text_16_form": seed(1024, frame(TEXT, "short in 16 bits", form=16)),
    "close_normal": seed(1024, frame(CLOSE, close(1000, b"bye"))),
    "close_empty": seed(1024, frame(CLOSE)),
    "close_one_byte": seed(1024, frame(CLOSE, b"\x03")),
    "close_bad_code": seed(1024, frame(CLOSE, close(1005))),
    "close_1013": seed(1024, frame(CLOSE, close(1013, b"try later"))),
    "close_bad_reason": seed(1024, frame(CLOSE, close(1000, b"\xc3"))),
    "close_mid_message": seed(1024, frame(TEXT, "a", fin=False), frame(CLOSE, close(4000))),
    "ping_125": seed(16, frame(PING, b"p" * 125)),
    "ping_126": seed(1024, frame(PING, b"p" * 126)),
    "ping_no_fin": seed(1024, frame(PING, fin=False)),
    "unmasked": seed(1024, frame(TEXT, "Hello", masked=False)),
    "rsv1": seed(1024, frame(TEXT, "x", rsv=4)),
    "opcode_3": seed(1024, frame(3, "x")),
    "opcode_b": seed(1024, frame(0xB)),
    "continuation_alone": seed(1024, frame(CONT, "x")),
    "interleaved": seed(1024, frame(TEXT, "a", fin=False), frame(BINARY, "b")),
    "max_at_limit": seed(10, frame(BINARY, "abcd", fin=False), frame(CONT, "efghij")),
    "max_over_limit": seed(10, frame(BINARY, "abcd", fin=False), frame(CONT, "efghijk")),
    "max_zero": seed(0, frame(TEXT), frame(PING, "still fine"), frame(TEXT, "x")),
    "huge_header": seed(NO_LIMIT, frame(BINARY, length=2**32 + 1)[:14]),
    "int_max_header": seed(NO_LIMIT, frame(BINARY, length=2**31 - 1 - 14)[:14]),
    "top_bit_length": seed(NO_LIMIT, frame(BINARY, length=2**63)[:14]),
    "pipelined": seed(NO_LIMIT, *[frame(TEXT, "message %d" % i) for i in range(20)]),
    "incomplete_tail": seed(1024, frame(TEXT, "whole"), frame(TEXT, "cut short")[:9]),
    "zero_mask": seed(1024, frame(TEXT, "plain", mask=b"\0\0\0\0")),
    "empty": seed(1024),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
