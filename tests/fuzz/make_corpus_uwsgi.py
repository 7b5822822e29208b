#!/usr/bin/env python3
"""Write the seed corpus of fuzz_uwsgi into tests/fuzz/corpus/fuzz_uwsgi/.

Each file is the harness's input: max_datasize as u16le (0xffff meaning no limit), then the
bytes handed to the parser. Run once from anywhere; it rewrites the seeds it owns and leaves any
other file in the directory alone.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_uwsgi")
NO_LIMIT = 0xFFFF


def var(key, value):
    key = key.encode() if isinstance(key, str) else key
    value = value.encode() if isinstance(value, str) else value
    return struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value


def packet(vars_, body=b"", modifier1=0, modifier2=0, datasize=None):
    block = b"".join(var(k, v) for k, v in vars_)
    size = len(block) if datasize is None else datasize
    return struct.pack("<BHB", modifier1, size, modifier2) + block + body


def seed(max_datasize, data):
    return struct.pack("<H", max_datasize) + data


NGINX = [
    ("QUERY_STRING", "a=1&b=%C3%A9"),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("REQUEST_URI", "/hello/world?a=1&b=%C3%A9"),
    ("PATH_INFO", "/hello/world"),
    ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "http"),
    ("REMOTE_ADDR", "127.0.0.1"),
    ("REMOTE_PORT", "51234"),
    ("SERVER_PORT", "8080"),
    ("SERVER_NAME", "localhost"),
    ("HTTP_HOST", "localhost:8080"),
    ("HTTP_USER_AGENT", "curl/7.88.1"),
    ("HTTP_ACCEPT", "*/*"),
]


def nginx_post():
    vars_ = [(k, {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "11",
                  "CONTENT_TYPE": "application/x-www-form-urlencoded"}.get(k, v))
             for k, v in NGINX]
    return packet(vars_, body=b"hello=world")


def many(n):
    return packet([("K%03d" % i, "") for i in range(n)])


SEEDS = {
    "nginx_get": seed(4096, packet(NGINX)),
    "nginx_post_body": seed(4096, nginx_post()),
    "pipelined": seed(4096, packet([("PATH_INFO", "/1")]) + packet([("PATH_INFO", "/2")])),
    "binary_values": seed(NO_LIMIT, packet([("HTTP_X", b"\0\r\n\xff\x80"), (b"\xc3\xa9\0", b"\0")])),
    "content_length_max": seed(4096, packet([("CONTENT_LENGTH", "9223372036854775807")])),
    "content_length_over": seed(4096, packet([("CONTENT_LENGTH", "9223372036854775808")])),
    "content_length_sign": seed(4096, packet([("CONTENT_LENGTH", "+1"), ("CONTENT_LENGTH", "2")])),
    "max_params": seed(NO_LIMIT, many(512)),
    "too_many_vars": seed(NO_LIMIT, many(513)),
    "datasize_65535": seed(NO_LIMIT, packet([("X", "v" * (65535 - 5))])),
    "too_big": seed(4096, packet([("X", "v" * 4093)])),
    "modifier1": seed(4096, packet([("PATH_INFO", "/")], modifier1=5)),
    "empty": seed(4096, packet([])),
    "empty_key": seed(4096, packet([("A", "a"), ("", "b")])),
    # A key length field cut in two by the end of the block, its other byte in the body.
    "split_length": seed(4096, packet([("A", "a")], datasize=6 + 1) + b"\x01\x00L\x01\x00w"),
    # A value that runs past the block into the body: datasize stops 2 bytes short of it.
    "truncated_value": seed(4096, packet([("KEY", "value")], datasize=2 + 3 + 2 + 3)),
    "incomplete": seed(4096, packet(NGINX)[:40]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print("%-20s %6d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
