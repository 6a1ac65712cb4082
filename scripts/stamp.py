#!/usr/bin/env python3
"""Writes the build stamp (git commit and build date) into linked dnsd binaries, in place: the
field after the marker in Sources/CBuildStamp/stamp.c. usage: scripts/stamp.py COMMIT DATE BINARY..."""
import sys

MARKER = b"@(#)dnsd-build-stamp:"
FIELD = 160 - len(MARKER)

commit, date, binaries = sys.argv[1], sys.argv[2], sys.argv[3:]
value = f"{commit}\n{date}".encode()
if len(value) >= FIELD:
    sys.exit(f"stamp.py: '{commit}' and '{date}' do not fit in {FIELD - 1} bytes")
for path in binaries:
    data = bytearray(open(path, "rb").read())
    at = data.find(MARKER)
    if at < 0 or data.find(MARKER, at + 1) >= 0:
        sys.exit(f"stamp.py: {path}: expected exactly one build stamp field")
    start = at + len(MARKER)
    data[start:start + FIELD] = value + b"\0" * (FIELD - len(value))
    open(path, "wb").write(data)
