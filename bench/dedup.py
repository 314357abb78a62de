#!/usr/bin/env python3
"""A week of daily backups of a tree that changes a little each day, with Coffer's
deduplicated repositories, restic and Borg, in one run on the same tree.

    python3 bench/dedup.py [--work DIR] [--days 7] [--size-mib 600] [--out FILE] [--smoke]

Day 1 backs up the whole tree; each later day first changes about 1% of it (edits in
place inside large files, appends to logs, new files, deletions, a rename; seeded, so
every run changes the same bytes) and backs up again. After the last day each tool
restores its latest snapshot. Reported per tool: repository growth per day, the first
and the nightly backup's time and peak memory (GNU time), restore time, and for Coffer
the in-memory index's bytes per blob (`coffer stats`). Coffer runs through its CLI
(`cargo build --release -p coffer-cli`), as a user runs it.

Figures are medians over the nightly days; the machine is what it is (2 cores, shared).
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COFFER = os.path.join(ROOT, "target", "release", "coffer")
WORDS = ("backup restore request completed failed retry upstream connection timeout user "
         "session cache miss hit write read flush commit rollback query index").split()


def text_bytes(rng, size):
    out, have = [], 0
    while have < size:
        line = " ".join(rng.choices(WORDS, k=rng.randint(4, 12)))
        line = f"{rng.randint(1_600_000_000, 1_800_000_000)} {line} id={rng.getrandbits(48):012x}\n"
        out.append(line)
        have += len(line)
    return "".join(out).encode()[:size]


def make_tree(root, size_mib, seed=1):
    """About size_mib MiB: a few large binaries (half the bytes), logs (a quarter),
    many small text and binary files (the rest), in nested folders."""
    rng = random.Random(seed)
    total = size_mib * MIB
    os.makedirs(root)
    big = total // 2
    for i in range(6):
        with open(os.path.join(root, f"disk-{i}.img"), "wb") as f:
            f.write(rng.randbytes(big // 6))
    logs = os.path.join(root, "var", "log")
    os.makedirs(logs)
    for i in range(8):
        with open(os.path.join(logs, f"service-{i}.log"), "wb") as f:
            f.write(text_bytes(rng, total // 4 // 8))
    left = total - big - total // 4
    n = 0
    while left > 0:
        d = os.path.join(root, "home", f"user{n % 7}", f"dir{n % 41}")
        os.makedirs(d, exist_ok=True)
        size = min(left, int(rng.paretovariate(1.2) * 8192))
        data = text_bytes(rng, size) if n % 3 else rng.randbytes(size)
        with open(os.path.join(d, f"file-{n}.{'txt' if n % 3 else 'bin'}"), "wb") as f:
            f.write(data)
        left -= size
        n += 1


def change_day(root, day, size_mib):
    """About 1% of the tree changes: in-place edits of large files, appends to logs,
    new small files, deletions and one rename."""
    rng = random.Random(1000 + day)
    budget = size_mib * MIB // 100
    imgs = sorted(p for p in os.listdir(root) if p.endswith(".img"))
    for name in rng.sample(imgs, 2):  # edits inside large files: 4 spots of 64 KiB
        path = os.path.join(root, name)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            for _ in range(4):
                f.seek(rng.randrange(0, size - 65536))
                f.write(rng.randbytes(65536))
    logs = os.path.join(root, "var", "log")
    for name in sorted(os.listdir(logs))[:4]:  # appends: a third of the budget
        with open(os.path.join(logs, name), "ab") as f:
            f.write(text_bytes(rng, budget // 3 // 4))
    home = os.path.join(root, "home")
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(home) for f in fs)
    for path in rng.sample(files, min(10, len(files))):  # deletions
        os.remove(path)
        files.remove(path)
    src = rng.choice(files)  # a rename
    os.rename(src, src + ".renamed")
    new_dir = os.path.join(home, f"day{day}")
    os.makedirs(new_dir)
    left = budget // 3
    i = 0
    while left > 0:  # new files: a third of the budget
        size = min(left, rng.randint(1024, 64 * 1024))
        with open(os.path.join(new_dir, f"new-{i}.txt"), "wb") as f:
            f.write(text_bytes(rng, size))
        left -= size
        i += 1


def du(path):
    total = 0
    for dp, _, fs in os.walk(path):
        for f in fs:
            try:
                total += os.path.getsize(os.path.join(dp, f))
            except OSError:
                pass
    return total


def timed(cmd, env, cwd=None):
    """Runs cmd under GNU time; returns (seconds, peak RSS in MiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        full = ["/usr/bin/time", "-f", "%e %M", "-o", t.name] + cmd
        r = subprocess.run(full, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd[:3])} failed ({r.returncode}):\n{r.stderr[-2000:]}")
        secs, kib = t.read().split()[-2:]
        return float(secs), int(kib) / 1024


class Tool:
    def __init__(self, name, work, env):
        self.name, self.repo, self.env = name, os.path.join(work, f"repo-{name}"), env

    def init(self):
        cmd = {
            "coffer": [COFFER, "init", "--repo", self.repo],
            "restic": ["restic", "-q", "-r", self.repo, "init", "--repository-version", "2"],
            "borg": ["borg", "init", "--encryption", "repokey-blake2", self.repo],
        }[self.name]
        subprocess.run(cmd, env=self.env, check=True, stdout=subprocess.DEVNULL)

    def backup(self, src, day):
        cmd = {
            "coffer": [COFFER, "backup", "--repo", self.repo, "--host", "bench", src],
            "restic": ["restic", "-q", "-r", self.repo, "backup", "--compression", "auto",
                       "--host", "bench", src],
            "borg": ["borg", "create", "--compression", "zstd,3", f"{self.repo}::day{day}", src],
        }[self.name]
        return timed(cmd, self.env)

    def restore(self, target, day):
        os.makedirs(target)
        if self.name == "coffer":
            return timed([COFFER, "restore", "latest", "--repo", self.repo, "--target", target],
                         self.env)
        if self.name == "restic":
            return timed(["restic", "-q", "-r", self.repo, "restore", "latest",
                          "--target", target], self.env)
        return timed(["borg", "extract", f"{self.repo}::day{day}"], self.env, cwd=target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "coffer-dedup-bench"))
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--size-mib", type=int, default=600)
    ap.add_argument("--out", default=None, help="write the report (markdown) here too")
    ap.add_argument("--benchmarks", default=None,
                    help="replace the week-of-changes section of this BENCHMARKS.md")
    ap.add_argument("--smoke", action="store_true", help="20 MiB, 2 days: proves it runs")
    args = ap.parse_args()
    if args.smoke:
        args.size_mib, args.days = 20, 2
    for need in ("restic", "borg"):
        if not shutil.which(need):
            sys.exit(f"{need} is not installed (apt-get install restic borgbackup)")
    subprocess.run(["cargo", "build", "--release", "-q", "--locked", "-p", "coffer-cli"],
                   cwd=ROOT, check=True)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    src = os.path.join(args.work, "tree")
    print(f"making a {args.size_mib} MiB tree in {src}", file=sys.stderr)
    make_tree(src, args.size_mib)
    env = dict(os.environ)
    key = os.path.join(args.work, "coffer.key")
    subprocess.run([COFFER, "key", "generate", key], check=True, stdout=subprocess.DEVNULL)
    pw = os.path.join(args.work, "password")
    with open(pw, "w") as f:
        f.write("bench password\n")
    env.update(COFFER_KEY_FILE=key, RESTIC_PASSWORD_FILE=pw, BORG_PASSPHRASE="bench password",
               BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
               BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
    tools = [Tool(n, args.work, env) for n in ("coffer", "restic", "borg")]
    for t in tools:
        t.init()
    res = {t.name: {"sizes": [], "backup": []} for t in tools}
    for day in range(1, args.days + 1):
        if day > 1:
            change_day(src, day, args.size_mib)
        for t in tools:
            secs, rss = t.backup(src, day)
            res[t.name]["backup"].append((secs, rss))
            res[t.name]["sizes"].append(du(t.repo))
            print(f"day {day} {t.name}: {secs:.1f} s, {rss:.0f} MiB peak, repository "
                  f"{du(t.repo) / MIB:.1f} MiB", file=sys.stderr)
    for t in tools:
        res[t.name]["restore"] = t.restore(os.path.join(args.work, f"out-{t.name}"), args.days)
    stats = subprocess.run([COFFER, "stats", "--repo", tools[0].repo], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    report(args, res, stats)


def report(args, res, stats):
    lines = []
    w = lines.append
    w(f"#### Deduplicated repositories: a week of daily backups ({args.size_mib} MiB tree, "
      f"{args.days} days, ~1% changed a day)")
    w("")
    w(f"`python3 bench/dedup.py` on {time.strftime('%Y-%m-%d')}; medians over the nightly "
      "days. Peak memory is GNU time's maximum RSS.")
    w("")
    w("| tool | first backup | nightly backup | growth per day | total after the week | "
      "restore | peak memory (first / nightly) |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    summary = {}
    for name, r in res.items():
        first_s, first_m = r["backup"][0]
        nightly = r["backup"][1:] or r["backup"]
        n_s = statistics.median(s for s, _ in nightly)
        n_m = statistics.median(m for _, m in nightly)
        sizes = r["sizes"]
        growth = [b - a for a, b in zip(sizes, sizes[1:])] or [0]
        g = statistics.median(growth)
        rs, rm = r["restore"]
        summary[name] = dict(first=first_s, nightly=n_s, growth=g, restore=rs,
                             mem=max(first_m, n_m))
        w(f"| {name} | {first_s:.1f} s | {n_s:.1f} s | {g / MIB:.1f} MiB | "
          f"{sizes[-1] / MIB:.0f} MiB | {rs:.1f} s | {first_m:.0f} / {n_m:.0f} MiB |")
    c, r = summary["coffer"], summary["restic"]
    w("")
    w("Targets (issue 15), Coffer against restic in this run:")
    w("")
    checks = [
        ("growth per day no more than restic's", c["growth"] <= r["growth"],
         f"{c['growth'] / MIB:.1f} vs {r['growth'] / MIB:.1f} MiB"),
        ("first backup at least 1.5× restic's speed", r["first"] / c["first"] >= 1.5,
         f"{r['first'] / c['first']:.2f}×"),
        ("nightly backup at least as fast as restic", c["nightly"] <= r["nightly"],
         f"{c['nightly']:.1f} vs {r['nightly']:.1f} s"),
        ("restore at least as fast as restic", c["restore"] <= r["restore"],
         f"{c['restore']:.1f} vs {r['restore']:.1f} s"),
        ("peak memory below half of restic's", c["mem"] < r["mem"] / 2,
         f"{c['mem']:.0f} vs {r['mem']:.0f} MiB"),
    ]
    for text, ok, figure in checks:
        w(f"- {'met' if ok else 'NOT met'}: {text} ({figure})")
    w("")
    w(f"Coffer's index after the week: {stats}")
    out = "\n".join(lines) + "\n"
    print(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out)
    if args.benchmarks:
        replace_section(args.benchmarks, out)


def replace_section(path, section):
    """Puts `section` in place of the week-of-changes section of `path` (from its
    heading to the next heading of its level or above), or at the end if it has none."""
    with open(path) as f:
        lines = f.read().split("\n")
    head = "#### Deduplicated repositories: a week"
    start = next((i for i, l in enumerate(lines) if l.startswith(head)), None)
    new = section.rstrip("\n").split("\n") + [""]
    if start is None:
        lines = lines + [""] + new
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith("#### ") or lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + new + lines[end:]
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
