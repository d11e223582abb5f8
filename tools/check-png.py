#!/usr/bin/env python3
"""Checks that a screenshot shows a rendered page: a PNG of at least MIN_WIDTH x MIN_HEIGHT
pixels with more than MIN_DISTINCT distinct byte values across its rows.

    python3 tools/check-png.py PNG [MIN_DISTINCT]

A blank page is one colour and compresses to almost nothing; a rendered report or document
is not. Only the standard library, so it runs wherever CI has a python3. Used by
tools/render-reports.sh (the HTML reports) and tools/check-contract.sh (the AsyncAPI
documentation).
"""

import struct
import sys
import zlib

MIN_WIDTH = 1000
MIN_HEIGHT = 1000
MIN_DISTINCT = 20


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = sys.argv[1]
    min_distinct = int(sys.argv[2]) if len(sys.argv) == 3 else MIN_DISTINCT
    try:
        data = open(path, "rb").read()
    except OSError as e:
        print(f"{path}: no screenshot: {e}", file=sys.stderr)
        return 1
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        print(f"{path}: not a PNG", file=sys.stderr)
        return 1
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        if kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    # Count distinct bytes across rows: a blank page has one colour.
    distinct = len(set(raw[i] for i in range(0, len(raw), 7)))
    print(f"{path}: {width}x{height}, {len(data)} bytes, {distinct} distinct byte values")
    if width < MIN_WIDTH or height < MIN_HEIGHT or distinct <= min_distinct:
        print(
            f"{path}: blank or tiny screenshot (want at least {MIN_WIDTH}x{MIN_HEIGHT} "
            f"and more than {min_distinct} distinct byte values)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
