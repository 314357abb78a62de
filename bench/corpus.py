#!/usr/bin/env python3
"""Benchmark corpora, made the same way on every machine (seeded, so two runs make the
same bytes; the mixed tree also copies files Debian ships, so it differs a little
between machines with other packages installed).

    python3 bench/corpus.py mixed DIR          a 1 GiB tree (see make_mixed)
    python3 bench/corpus.py random FILE SIZE   SIZE bytes of random data
    python3 bench/corpus.py flat FILE SIZE     half random, half log text

SIZE takes a K, M or G suffix (powers of 1024). A corpus already complete (a `.done`
marker beside it) is kept, so reruns skip the minutes it takes to make.
"""

import os
import random
import shutil
import sys

MIB = 1 << 20
GIB = 1 << 30

WORDS = (
    "backup restore request completed failed retry upstream connection timeout user "
    "session cache miss hit write read flush commit rollback query index table worker "
    "queue job scheduled started finished bytes latency ok warn error info debug"
).split()
LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]


def parse_size(text):
    units = {"K": 1 << 10, "M": MIB, "G": GIB}
    if text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def write_random(path, size, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(rng.randbytes(n))
            left -= n


def log_text(size, seed):
    """Log lines as services write them: timestamps, hosts, levels, words, numbers and
    IDs, which zstd shrinks about as much as real logs (several times, not a hundred)."""
    rng = random.Random(seed)
    out = []
    have = 0
    t = 1_700_000_000_000
    while have < size:
        t += rng.randint(1, 900)
        words = " ".join(rng.choices(WORDS, k=rng.randint(3, 9)))
        line = (
            f"{t // 1000}.{t % 1000:03d} host-{rng.randint(1, 40):02d} "
            f"svc[{rng.randint(100, 99999)}] {rng.choice(LEVELS)} {words} "
            f"id={rng.getrandbits(64):016x} took={rng.randint(0, 5000)}ms "
            f"size={rng.randint(0, 1 << 20)}\n"
        ).encode()
        out.append(line)
        have += len(line)
    return b"".join(out)[:size]


def write_text(path, size, seed):
    with open(path, "wb") as f:
        left = size
        part = 0
        while left:
            n = min(left, 16 * MIB)
            f.write(log_text(n, seed * 1000 + part))
            left -= n
            part += 1


def tree_bytes(root):
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def copy_capped(src, dst, budget):
    """Copies regular files and symlinks under `src` into `dst` in sorted order until
    `budget` bytes are copied; returns the bytes copied."""
    copied = 0
    for dirpath, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            q = os.path.join(dst, os.path.relpath(p, src))
            try:
                if os.path.islink(p):
                    os.makedirs(os.path.dirname(q), exist_ok=True)
                    os.symlink(os.readlink(p), q)
                elif os.path.isfile(p):
                    size = os.path.getsize(p)
                    if copied + size > budget:
                        return copied
                    os.makedirs(os.path.dirname(q), exist_ok=True)
                    shutil.copy2(p, q)
                    copied += size
            except OSError:
                continue  # unreadable or vanished: the corpus does without it
    return copied


def make_mixed(root, size=GIB):
    """About `size` bytes: many small files (documentation and manual pages shipped in
    Debian packages: text, and already-compressed .gz), shared libraries (binaries that
    compress about 2-3x), then large files to make up the rest, alternating random data
    (as photos and video are) and log text."""
    if os.path.exists(os.path.join(root, ".done")):
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    have = 0
    for src, name, share in [
        ("/usr/share/doc", "doc", 0.15),
        ("/usr/share/man", "man", 0.10),
        ("/usr/lib/x86_64-linux-gnu", "libs", 0.35),
    ]:
        if os.path.isdir(src):
            have += copy_capped(src, os.path.join(root, name), int(size * share))
    i = 0
    os.makedirs(os.path.join(root, "large"))
    while have < size:
        n = min(size - have, 128 * MIB)
        if i % 2:
            write_random(os.path.join(root, "large", f"video-{i}.bin"), n, 100 + i)
        else:
            write_text(os.path.join(root, "large", f"service-{i}.log"), n, 200 + i)
        have += n
        i += 1
    open(os.path.join(root, ".done"), "w").close()


def make_file(path, size, kind):
    done = path + ".done"
    if os.path.exists(done) and os.path.getsize(path) == size:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if kind == "random":
        write_random(path, size, 7)
    else:
        half = size // 2
        write_random(path, half, 8)
        with open(path, "ab") as f:
            left = size - half
            part = 0
            while left:
                n = min(left, 16 * MIB)
                f.write(log_text(n, 9000 + part))
                left -= n
                part += 1
    open(done, "w").close()


def main(argv):
    if len(argv) == 3 and argv[1] == "mixed":
        make_mixed(argv[2])
    elif len(argv) == 4 and argv[1] in ("random", "flat"):
        make_file(argv[2], parse_size(argv[3]), argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
