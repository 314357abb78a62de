#!/usr/bin/env python3
"""Coffer against the tools people would pick instead, on this machine, in one run.

    python3 bench/peers.py [--work DIR] [--reps N] [--out BENCHMARKS.md]

Run it through bench/peers.sh, which installs the contenders and builds Coffer first.
Each measurement runs the command under GNU time (wall time, user+system CPU time of it
and its children, peak resident set size).
Contenders run in turn within each repetition, and the order rotates between
repetitions, so a slow spell on the machine does not land on one tool. The report gives
medians with min and max over the repetitions.

Progress goes to stderr when it is a terminal; the report goes to --out.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COFFER = os.path.join(REPO_ROOT, "target", "release", "coffer")
MIB = 1 << 20
GIB = 1 << 30
TTY = sys.stderr.isatty()
# Coffer's suite names: criterion's group for the raw AEAD, and the name people know.
AEADS = {
    "aes-256-gcm": ("AEAD_AES_256_GCM", "AES-256-GCM"),
    "chacha20-poly1305": ("AEAD_CHACHA20_POLY1305", "ChaCha20-Poly1305"),
}


def progress(text):
    if TTY:
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()


class Failed(Exception):
    pass


def measure(cmd, *, cwd=None, env=None):
    """Runs `cmd` with stdout to /dev/null under GNU time (a small C program, so the
    peak RSS it reports is the command's own: a child forked from this Python process
    would carry Python's resident set into its count); returns wall s, CPU s (user +
    system, children included) and peak RSS bytes."""
    full_env = dict(os.environ, **(env or {}))
    with tempfile.NamedTemporaryFile("r") as stats, tempfile.TemporaryFile() as err, \
            open(os.devnull, "wb") as null:
        timed = ["/usr/bin/time", "-f", "%U %S %M", "-o", stats.name, "--"] + cmd
        start = time.perf_counter()
        proc = subprocess.run(timed, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                              stdout=null, stderr=err, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            raise Failed(f"{' '.join(cmd)} exited {proc.returncode}: {tail}")
        user, system, kib = stats.read().split()[-3:]
    return {"wall": wall, "cpu": float(user) + float(system), "rss": int(kib) * 1024}


def quiet(cmd, **kw):
    """A setup step, not measured."""
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def du(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "not found"


def machine():
    info = {"cpu": platform.processor() or "?", "flags": [], "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if m:
            info["cpu"] = m.group(1).strip()
        m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        if m:
            have = set(m.group(1).split())
            wanted = ["aes", "vaes", "pclmulqdq", "vpclmulqdq", "avx", "avx2", "avx512f",
                      "sha_ni", "ssse3", "sse4_1"]
            info["flags"] = [f for f in wanted if f in have]
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    info["memory"] = f"{kib / (1 << 20):.1f} GiB"
    info["kernel"] = platform.release()
    return info


class Results:
    """Samples per (table, row), in the order rows were first seen."""

    def __init__(self):
        self.rows = {}

    def add(self, table, row, sample):
        self.rows.setdefault(table, {}).setdefault(row, []).append(sample)

    def get(self, table, row):
        return self.rows.get(table, {}).get(row, [])


def med(samples, key):
    values = [s[key] for s in samples]
    return statistics.median(values), min(values), max(values)


# --- contenders -------------------------------------------------------------------

class Keys:
    def __init__(self, work):
        self.coffer = os.path.join(work, "keys", "coffer.key")
        self.age = os.path.join(work, "keys", "age.txt")
        self.age_recipient = os.path.join(work, "keys", "age.pub")
        self.password = os.path.join(work, "keys", "password")
        os.makedirs(os.path.dirname(self.coffer), exist_ok=True)
        if not os.path.exists(self.coffer):
            quiet([COFFER, "key", "generate", self.coffer])
        if not os.path.exists(self.age):
            quiet(["age-keygen", "-o", self.age], stderr=subprocess.DEVNULL)
        with open(self.age_recipient, "w") as f:
            subprocess.run(["age-keygen", "-y", self.age], stdout=f, check=True)
        if not os.path.exists(self.password):
            with open(self.password, "w") as f:
                f.write(os.urandom(24).hex())
        os.chmod(self.password, 0o600)


def seal_cmds(tool, keys, src):
    """The command sealing `src` to stdout, per contender."""
    if tool.startswith("coffer"):
        suite = tool.split()[1]
        return [COFFER, "seal", "--key-file", keys.coffer, "--suite", suite, "-o", "-", src]
    return [tool, "-e", "-R", keys.age_recipient, src]  # output: stdout


def open_cmd(tool, keys, sealed):
    if tool.startswith("coffer"):
        return [COFFER, "open", "--key-file", keys.coffer, "-o", "-", sealed]
    return [tool, "-d", "-i", keys.age, sealed]


def make_sealed(tool, keys, src, dst):
    with open(dst, "wb") as out:
        subprocess.run(seal_cmds(tool, keys, src), stdout=out, check=True)


class Backup:
    """One backup tool on one fresh repository: init, first, second, restore."""

    def __init__(self, tool, keys, work):
        self.tool, self.keys = tool, keys
        self.repo = os.path.join(work, "repos", tool)
        self.base = os.path.join(work, "repos", tool + "-state")
        self.env = {}
        if tool == "restic":
            self.env = {"RESTIC_PASSWORD_FILE": keys.password,
                        "RESTIC_CACHE_DIR": os.path.join(self.base, "cache")}
        elif tool == "borg":
            with open(keys.password) as f:
                password = f.read()
            self.env = {"BORG_PASSPHRASE": password, "BORG_BASE_DIR": self.base,
                        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def reset(self):
        for p in (self.repo, self.base):
            shutil.rmtree(p, ignore_errors=True)
        os.makedirs(self.base)
        if self.tool == "coffer":
            quiet([COFFER, "init", "--repo", self.repo, "--key-file", self.keys.coffer])
        elif self.tool == "restic":
            quiet(["restic", "-q", "-r", self.repo, "init", "--repository-version", "2"],
                  env=dict(os.environ, **self.env))
        else:
            quiet(["borg", "init", "--encryption", "repokey-blake2", self.repo],
                  env=dict(os.environ, **self.env), stderr=subprocess.DEVNULL)

    def backup_cmd(self, name, src):
        if self.tool == "coffer":
            return [COFFER, "backup", "--repo", self.repo, "--key-file", self.keys.coffer,
                    "--host", "bench", src]
        if self.tool == "restic":
            return ["restic", "-q", "-r", self.repo, "backup", "--compression", "auto",
                    "--host", "bench", src]
        return ["borg", "create", "--compression", "zstd,3", f"{self.repo}::{name}", src]

    def restore(self, target):
        """(command, cwd) restoring the first backup into `target`."""
        os.makedirs(target)
        if self.tool == "coffer":
            return [COFFER, "restore", "--repo", self.repo, "--key-file", self.keys.coffer,
                    "--target", target, "latest"], None
        if self.tool == "restic":
            return ["restic", "-q", "-r", self.repo, "restore", "latest",
                    "--target", target], None
        return ["borg", "extract", f"{self.repo}::first"], target


# --- the run ----------------------------------------------------------------------

def human(size):
    return f"{size // GIB} GiB" if size % GIB == 0 else f"{size // MIB} MiB"


def rotate(items, rep):
    k = rep % len(items)
    return items[k:] + items[:k]


def raw_primitive(quick):
    """The ring AEADs over whole 16 KiB chunks (criterion, the providers bench), the
    ceiling for `coffer seal` and `coffer open`: GiB/s per (suite, op), from criterion's
    median time per iteration and the bytes each iteration seals or opens."""
    progress("criterion: raw AEADs (ring) over 16 KiB chunks")
    quiet(["cargo", "bench", "-q", "-p", "coffer-adapters", "--locked", "--bench",
           "providers", "--", "ring/raw"] + (["--quick"] if quick else []),
          cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    found = {}
    for suite, (group, _) in AEADS.items():
        for op in ("seal", "open"):
            d = os.path.join(REPO_ROOT, "target", "criterion", group, f"ring_raw_{op}", "new")
            with open(os.path.join(d, "benchmark.json")) as f:
                nbytes = json.load(f)["throughput"]["Bytes"]
            with open(os.path.join(d, "estimates.json")) as f:
                ns = json.load(f)["median"]["point_estimate"]
            found[(suite, op)] = nbytes / (ns * 1e-9) / GIB
    return found


def run(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    res = Results()
    keys = Keys(work)
    progress("corpora")
    one = GIB // args.scale
    random_1g = os.path.join(work, f"random-{human(one)}.bin".replace(" ", ""))
    corpus.make_file(random_1g, one, "random")
    mixed = os.path.join(work, f"mixed-{human(one)}".replace(" ", ""))
    corpus.make_mixed(mixed, one)
    flats = {}
    for size in (one // 4, one, one * 4):
        path = os.path.join(work, f"flat-{human(size)}.bin".replace(" ", ""))
        corpus.make_file(path, size, "flat")
        flats[human(size)] = path

    raw = raw_primitive(args.smoke)

    # Seal and open: 1 GiB of random bytes, output to /dev/null.
    tools = ["coffer aes-256-gcm", "coffer chacha20-poly1305", "age", "rage"]
    tools = [t for t in tools if shutil.which(t.split()[0]) or t.startswith("coffer")]
    sealed = {}
    for tool in tools:
        dst = os.path.join(work, f"sealed-{tool.replace(' ', '-')}")
        make_sealed(tool, keys, random_1g, dst)
        sealed[tool] = dst
    for rep in range(args.reps):
        for tool in rotate(tools, rep):
            for op in ("seal", "open"):
                progress(f"seal/open rep {rep + 1}/{args.reps}: {tool} {op}")
                cmd = (seal_cmds(tool, keys, random_1g) if op == "seal"
                       else open_cmd(tool, keys, sealed[tool]))
                sample = measure(cmd)
                sample["bytes"] = one
                sample["out"] = du(sealed[tool]) if op == "seal" else one
                res.add("crypt", (tool, op), sample)
    for p in sealed.values():
        os.remove(p)

    # Backups of the mixed tree: first, second (unchanged tree), restore.
    mixed_bytes = corpus.tree_bytes(mixed)
    backups = [Backup(t, keys, work) for t in ("coffer", "restic", "borg")]
    for rep in range(args.reps):
        for b in rotate(backups, rep):
            b.reset()
            for name in ("first", "second"):
                progress(f"backup rep {rep + 1}/{args.reps}: {b.tool} {name}")
                before = du(b.repo)
                sample = measure(b.backup_cmd(name, mixed), env=b.env)
                sample["bytes"] = mixed_bytes
                sample["out"] = du(b.repo) - before
                res.add("backup", (b.tool, f"{name} backup"), sample)
            target = os.path.join(work, "restored")
            shutil.rmtree(target, ignore_errors=True)
            cmd, cwd = b.restore(target)
            progress(f"backup rep {rep + 1}/{args.reps}: {b.tool} restore")
            sample = measure(cmd, cwd=cwd, env=b.env)
            got = corpus.tree_bytes(target)
            if got != mixed_bytes:
                raise Failed(f"{b.tool} restored {got} bytes of {mixed_bytes}")
            sample["bytes"] = mixed_bytes
            sample["out"] = got
            res.add("backup", (b.tool, "restore"), sample)
            shutil.rmtree(target)
    for b in backups:
        shutil.rmtree(b.repo, ignore_errors=True)
        shutil.rmtree(b.base, ignore_errors=True)

    # Coffer's memory as the input grows.
    coffer_b = Backup("coffer", keys, work)
    for rep in range(args.reps):
        for label, path in flats.items():
            size = os.path.getsize(path)
            progress(f"memory rep {rep + 1}/{args.reps}: {label}")
            sealed_file = os.path.join(work, "flat.coffer")
            s = measure([COFFER, "seal", "--key-file", keys.coffer, "-o", sealed_file, path])
            res.add("memory", ("seal", label), dict(s, bytes=size, out=du(sealed_file)))
            s = measure(open_cmd("coffer", keys, sealed_file))
            res.add("memory", ("open", label), dict(s, bytes=size, out=size))
            os.remove(sealed_file)
            coffer_b.reset()
            s = measure(coffer_b.backup_cmd("first", path))
            res.add("memory", ("backup", label), dict(s, bytes=size, out=du(coffer_b.repo)))
            target = os.path.join(work, "restored")
            shutil.rmtree(target, ignore_errors=True)
            cmd, _ = coffer_b.restore(target)
            s = measure(cmd)
            res.add("memory", ("restore", label), dict(s, bytes=size, out=du(target)))
            shutil.rmtree(target)
    shutil.rmtree(coffer_b.repo, ignore_errors=True)
    shutil.rmtree(coffer_b.base, ignore_errors=True)
    progress("")
    return res, raw, mixed_bytes, list(flats)


# --- the report -------------------------------------------------------------------

def fmt_range(samples, key, scale, digits):
    m, lo, hi = med(samples, key)
    f = f"{{:.{digits}f}}"
    return f"{f.format(m / scale)} ({f.format(lo / scale)}–{f.format(hi / scale)})"


def rate(samples):
    """Median throughput in MiB/s with min–max."""
    rates = [s["bytes"] / s["wall"] / MIB for s in samples]
    return statistics.median(rates), min(rates), max(rates)


def row(label, samples):
    r, lo, hi = rate(samples)
    return (f"| {label} | {r:,.0f} ({lo:,.0f}–{hi:,.0f}) | {fmt_range(samples, 'wall', 1, 2)} "
            f"| {fmt_range(samples, 'cpu', 1, 2)} | {fmt_range(samples, 'rss', MIB, 1)} "
            f"| {statistics.median(s['out'] for s in samples) / MIB:,.1f} |")


HEADER = ("| | MiB/s | wall s | CPU s | peak RSS MiB | output MiB |\n"
          "| --- | --- | --- | --- | --- | --- |")


def report(args, res, raw, mixed_bytes, sizes, started, seconds):
    m = machine()
    versions = {
        "coffer": version([COFFER, "--version"]),
        "age": version(["age", "--version"]),
        "rage": version(["rage", "--version"]),
        "restic": version(["restic", "version"]),
        "borg": version(["borg", "--version"]),
        "zstd": version(["zstd", "--version"]),
    }
    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w(f"Made by `bash bench/peers.sh` on {started:%Y-%m-%d} in {seconds / 60:.0f} minutes, "
      f"{args.reps} repetitions of everything, contenders alternating"
      f"{f', corpora scaled down {args.scale}×' if args.scale != 1 else ''}. Medians, with min–max "
      "in brackets. Regenerate with the same command; the figures below are this machine's, "
      "and only the ratios carry over to another.")
    w("")
    w("## Machine")
    w("")
    w(f"- CPU: {m['cpu']}, {m['cores']} cores; flags that matter here: "
      f"{', '.join(m['flags']) or 'none found'}")
    w(f"- Memory: {m['memory']}; Linux {m['kernel']}")
    w("- Versions: " + "; ".join(f"{k}: `{v}`" for k, v in versions.items()))
    w("")

    def thr(table, key):
        return rate(res.get(table, key))[0]

    # Headline ratios and the targets.
    w("## Headline")
    w("")
    w("| comparison | ratio | target | met |")
    w("| --- | --- | --- | --- |")
    targets = []

    def target(text, ratio, goal, ok):
        targets.append(ok)
        w(f"| {text} | {ratio} | {goal} | {'yes' if ok else '**no**'} |")

    for suite, (_, name) in AEADS.items():
        for op in ("seal", "open"):
            cli = thr("crypt", (f"coffer {suite}", op)) / 1024
            ratio = cli / raw[(suite, op)]
            target(f"`coffer {op}` {name} vs the raw AEAD (ring, 16 KiB chunks)",
                   f"{ratio:.1%}", "≥ 90%", ratio >= 0.9)
    for peer in ("age", "rage"):
        if not res.get("crypt", (peer, "seal")):
            w(f"| coffer vs {peer} | not run ({peer} missing) | faster | — |")
            continue
        for op in ("seal", "open"):
            ratio = (thr("crypt", ("coffer chacha20-poly1305", op))
                     / thr("crypt", (peer, op)))
            target(f"`coffer {op}` ChaCha20-Poly1305 vs {peer} (same cipher)",
                   f"{ratio:.2f}×", "> 1×", ratio > 1)
            ratio = thr("crypt", ("coffer aes-256-gcm", op)) / thr("crypt", (peer, op))
            w(f"| `coffer {op}` AES-256-GCM (default) vs {peer} | {ratio:.2f}× | | |")
    for op in ("seal", "open", "backup", "restore"):
        rss = [med(res.get("memory", (op, size)), "rss")[0] for size in sizes]
        spread = (max(rss) - min(rss)) / MIB
        target(f"`coffer {op}` peak RSS, {sizes[0]} → {sizes[-1]} of input",
               f"{min(rss) / MIB:.1f}–{max(rss) / MIB:.1f} MiB (spread {spread:.1f} MiB)",
               "spread ≤ 4 MiB", spread <= 4)
    for peer in ("restic", "borg"):
        for op in ("first backup", "second backup", "restore"):
            ratio = thr("backup", ("coffer", op)) / thr("backup", (peer, op))
            if op == "first backup":
                target(f"coffer first backup vs {peer}, mixed tree", f"{ratio:.2f}×",
                       "> 1×", ratio > 1)
            else:
                w(f"| coffer {op} vs {peer}, mixed tree | {ratio:.2f}× | | |")
    w("")
    w(f"{sum(targets)} of {len(targets)} targets met.")
    w("")

    def section(title, prose, rows, extra=()):
        w(f"## {title}")
        w("")
        w(prose)
        w("")
        w(HEADER)
        for label, samples in rows:
            w(row(label, samples))
        lines.extend(extra)
        w("")

    section(
        f"Seal and open: {sizes[1]} of random bytes to /dev/null",
        "Input read from the page cache; output to /dev/null, so the figures are the tools' "
        "own cost. age and rage use X25519 recipients and ChaCha20-Poly1305 in 64 KiB "
        "chunks; Coffer uses 16 KiB chunks, AES-256-GCM (default) or ChaCha20-Poly1305, "
        "with the ring provider, on one worker more than there are cores, each reading, "
        "sealing or opening and writing its own 2 MiB batch in turn. The raw rows are one "
        "core sealing or opening 16 KiB chunks in memory, the ceiling the targets compare "
        "against. Output MiB is the sealed file's size.",
        [(f"{tool} {op}", samples) for (tool, op), samples in res.rows["crypt"].items()],
        [f"| raw {AEADS[suite][1]} {op} (criterion, ring, ceiling) | {gib * 1024:,.0f} | | | | |"
         for (suite, op), gib in sorted(raw.items())],
    )
    section(
        f"Backup and restore: the mixed tree ({mixed_bytes / MIB:,.0f} MiB)",
        "The tree (`bench/corpus.py mixed`): documentation and manual pages shipped in "
        "Debian packages (many small files, text and .gz), shared libraries, and large files "
        "of random data and of log text. Each repetition starts from a new, empty repository "
        "on the same disk. *First backup* fills it; *second backup* backs up the unchanged "
        "tree again; *restore* writes the first backup to a new folder (checked to hold every "
        "byte). Output MiB is what the repository grew by. Coffer's restore makes each file "
        "durable before its name appears (one filesystem sync per batch of up to 512 files); "
        "restic and borg do not sync restored files.",
        [(f"{tool} {op}", samples) for (tool, op), samples in res.rows["backup"].items()],
    )
    section(
        "Memory as the input grows (Coffer)",
        "One file each, half random and half log text (`bench/corpus.py flat`). Seal writes "
        "a file, open writes to /dev/null, backup goes to a new repository, restore to a new "
        "folder.",
        [(f"coffer {op}, {size}", samples)
         for (op, size), samples in res.rows["memory"].items()],
    )

    w("## Commands")
    w("")
    w("`K` is a Coffer key file, `A`/`A.pub` an age identity and its recipient, `P` a "
      "password file, `R` a new repository, `T` the tree, `F` the input file.")
    w("")
    w("```")
    for cmd in [
        "coffer seal --key-file K --suite SUITE -o - F > /dev/null",
        "coffer open --key-file K -o - F.coffer > /dev/null",
        "age -e -R A.pub F > /dev/null;   age -d -i A F.age > /dev/null",
        "rage -e -R A.pub F > /dev/null;  rage -d -i A F.age > /dev/null",
        "cargo bench -p coffer-adapters --bench providers -- ring/raw",
        "coffer init --repo R --key-file K",
        "coffer backup --repo R --key-file K --host bench T   (twice)",
        "coffer restore --repo R --key-file K --target OUT latest",
        "restic -r R init --repository-version 2               (RESTIC_PASSWORD_FILE=P)",
        "restic -r R backup --compression auto --host bench T  (twice)",
        "restic -r R restore latest --target OUT",
        "borg init --encryption repokey-blake2 R               (BORG_PASSPHRASE from P)",
        "borg create --compression zstd,3 R::first T           (then R::second)",
        "cd OUT && borg extract R::first",
    ]:
        w(cmd)
    w("```")
    w("")
    w("## What the numbers mean")
    w("")
    w("- MiB/s is input bytes over wall time: for backups, the tree's bytes whatever the "
      "tool stored. CPU s is user plus system time of the process and its children; above "
      "wall time, the tool used more than one core. Peak RSS is the largest resident set "
      "of the process (or of a child, if larger).")
    w("- All three deduplicate: a second backup of an unchanged tree recognises unchanged "
      "files by their metadata (size, mtime, ctime, inode) and stores almost nothing; the "
      "second-backup rows show what that costs each tool. (Before 2026-11-30 Coffer's "
      "backups were whole copies, v1 archives, now `coffer archive`.)")
    w("- Compression differs: Coffer and borg use zstd level 3; restic's `auto` is its "
      "fastest zstd level. Encryption differs: Coffer AES-256-GCM; restic AES-256-CTR with "
      "Poly1305-AES; borg `repokey-blake2` AES-256-CTR with BLAKE2b. Output MiB shows what "
      "each stored.")
    w("- Threads: Coffer compresses and seals on both cores; restic uses several threads; "
      "borg 1.2 one. On this 2-core machine that favours the first two.")
    w("- The corpora sit in the page cache (the machine has more memory than they take), "
      "so disk reads do not count; writes go to the disk's page cache as well.")
    w("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/coffer-peers",
                    help="scratch folder for corpora and repositories (needs ~20 GiB)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "BENCHMARKS.md"))
    ap.add_argument("--json", help="also write the raw samples here")
    ap.add_argument("--scale", type=int, default=1,
                    help="divide every corpus size by this (a quick trial of the script; "
                         "the report says so)")
    ap.add_argument("--smoke", action="store_true",
                    help="a quick check that the whole script works (CI): one repetition, "
                         "corpora scaled down 256x, criterion --quick; not for figures")
    args = ap.parse_args()
    if args.smoke:
        args.reps, args.scale = 1, 256
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    try:
        res, raw, mixed_bytes, sizes = run(args)
    except Failed as e:
        progress("")
        print(f"bench: {e}", file=sys.stderr)
        return 1
    text = report(args, res, raw, mixed_bytes, sizes, started, time.monotonic() - t0)
    # The sections from "## Deduplicated repositories" on are bench/dedup.py's and the
    # chunker's (peers.sh runs dedup.py next): keep them.
    kept = ""
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = f.read()
        at = old.find("\n## Deduplicated repositories")
        if at >= 0:
            kept = old[at:]
    with open(args.out, "w") as f:
        f.write(text.rstrip("\n") + "\n" + kept)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({t: {" / ".join(k): v for k, v in rows.items()}
                       for t, rows in res.rows.items()}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
