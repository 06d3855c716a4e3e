#!/usr/bin/env python3
"""Every relative link in README.md, ARCHITECTURE.md and docs/*.md resolves: the file
exists and, with a #fragment, the target has a heading with that anchor (GitHub's
rule: lower case, punctuation dropped, spaces to hyphens, repeats numbered). And the
README stays a five-minute read: under 12 KB."""

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
README_MAX_BYTES = 12 * 1024


def anchors(path):
    seen = {}
    out = set()
    in_code = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                in_code = not in_code
                continue
            m = None if in_code else re.match(r"^(#{1,6}) (.+?)\s*$", line)
            if not m:
                continue
            a = re.sub(r"[^\w\- ]", "", m.group(2).strip().lower()).replace(" ", "-")
            n = seen.get(a, 0)
            seen[a] = n + 1
            out.add(a if n == 0 else f"{a}-{n}")
    return out


def links(path):
    in_code = False
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.startswith("```"):
                in_code = not in_code
                continue
            if in_code:
                continue
            for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", line):
                yield i, m.group(1)


def main():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "ARCHITECTURE.md")]
    docs = os.path.join(ROOT, "docs")
    files += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
    bad = []
    for f in files:
        for line, target in links(f):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, frag = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
            rel = os.path.relpath(f, ROOT)
            if not os.path.exists(dest):
                bad.append(f"{rel}:{line}: {target}: no such file")
            elif frag and dest.endswith(".md") and frag not in anchors(dest):
                bad.append(f"{rel}:{line}: {target}: no heading with that anchor")
    size = os.path.getsize(os.path.join(ROOT, "README.md"))
    if size >= README_MAX_BYTES:
        bad.append(f"README.md is {size} bytes; keep it under {README_MAX_BYTES} (move detail to docs/)")
    for b in bad:
        print(b)
    print(f"docs check: {len(bad)} problem(s) in {len(files)} files")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
