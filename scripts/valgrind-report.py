#!/usr/bin/python3
"""Summarise build/valgrind/vg.*.log for `make valgrind`.

Debian's libpython is stripped, so CPython's own known uninitialised-value reports (in
_PyLong_FromByteArray and friends, at import time) can't be matched by python3.supp's symbol
names; this report separates them from what matters: any error whose innermost frame, or
definite leak whose allocating frame, is gyre's own code (a frame "(file.c:LINE)" of server/ or
proto/; libpython's frames have no line numbers). Exit 1 if any.
"""
import glob
import os
import re
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
logs = sorted(glob.glob(os.path.join(root, "build", "valgrind", "vg.*.log")))
own_frame = re.compile(r"\((?:[a-z_]+\.c):\d+\)")
blocks_total = ours = 0
for path in logs:
    text = open(path, errors="replace").read()
    # A report is a run of "==PID== " lines ended by an empty "==PID== " line.
    for block in re.split(r"^==\d+== ?\n", text, flags=re.M):
        lines = [l.split("== ", 1)[-1] for l in block.splitlines() if l.startswith("==")]
        if not lines or not re.search(r"(uninitialised|Invalid|definitely lost|overlap|free)",
                                      lines[0]):
            continue
        blocks_total += 1
        frames = [l.strip() for l in lines[1:] if l.strip().startswith(("at ", "by "))]
        frames = [f for f in frames if "vg_replace_malloc" not in f and "vgpreload" not in f]
        if frames and own_frame.search(frames[0]):
            ours += 1
            print("%s:\n  %s" % (os.path.basename(path), "\n  ".join(lines[:14])))
print("valgrind: %d processes, %d reports, %d through gyre's code" % (len(logs), blocks_total, ours))
sys.exit(1 if ours else 0)
