#!/usr/bin/env python3
"""What page-level incrementals would store, measured on a real data directory (no Cairn format involved).

Usage: page-incr-estimate.py BEFORE AFTER LSN LEVEL
BEFORE: a copy of the data directory's base/ and global/ taken right after the previous backup's checkpoint
(the previous backup's content); AFTER: the data directory now; LSN: the previous backup's start (redo) LSN, X/Y.
For every relation main-fork segment it applies three rules and writes what each would store into a file, then
compresses each file with `zstd -LEVEL` (one stream per rule, so the sizes compare like with like):
  file  – a changed file (size or content) stored whole: pgBackRest --type=incr's unit (it compares size+mtime)
  block – Cairn today: a 256 KiB block stored whole unless every page is older than LSN and its bytes are the same
  page  – the design: a block with at most T pages that are newer than LSN or differ from the previous copy is
          stored as those pages (+ a 48-byte header and 2 bytes per page number), else whole; T = 8, 16, 24,
          and 32 (every changed block as a patch: the most page granularity can save)
  xor   – every changed block as a patch whose page images are XORed with the base's pages (zeros where
          the page did not change byte-wise: a 1 % update changes a few tuple headers per page)
Also counts pages whose LSN is old but whose bytes differ (hint bits set without WAL): the LSN alone would miss them.
"""
import os, re, struct, subprocess, sys

BLOCK, PAGE = 256 * 1024, 8192
REL = re.compile(r"^(global/\d+|base/\d+/\d+)(\.\d+)?$")
before, after, lsn_text, level = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
hi, lo = lsn_text.split("/")
LSN = (int(hi, 16) << 32) | int(lo, 16)
THRESHOLDS = (8, 16, 24, 32)
out = {k: open(f"{after}/../est-{k}.bin", "wb") for k in ["file", "block"] + [f"page{t}" for t in THRESHOLDS] + ["xor"]}
raw = {k: 0 for k in out}
per_file = []
stats = dict(files=0, files_changed=0, blocks=0, blocks_stored=0, pages=0, pages_newer=0, pages_hint_only=0)

def page_lsn(b, off):
    x, y = struct.unpack_from("<II", b, off)
    return (x << 32) | y

for root, _, names in os.walk(after):
    for n in sorted(names):
        full = os.path.join(root, n)
        rel = os.path.relpath(full, after)
        if not REL.match(rel):
            continue
        stats["files"] += 1
        data = open(full, "rb").read()
        old_path = os.path.join(before, rel)
        old = open(old_path, "rb").read() if os.path.exists(old_path) else b""
        if data == old:
            continue
        stats["files_changed"] += 1
        fstat = [0, 0]
        out["file"].write(data); raw["file"] += len(data)
        for boff in range(0, len(data), BLOCK):
            blk = data[boff:boff + BLOCK]
            oblk = old[boff:boff + BLOCK]
            stats["blocks"] += 1
            changed = []
            for poff in range(0, len(blk), PAGE):
                stats["pages"] += 1
                newer = page_lsn(blk, poff) >= LSN
                differs = blk[poff:poff + PAGE] != oblk[poff:poff + PAGE]
                if newer:
                    stats["pages_newer"] += 1; fstat[0] += 1
                elif differs:
                    stats["pages_hint_only"] += 1; fstat[1] += 1
                if newer or differs:
                    changed.append(poff)
            if not changed and len(blk) == len(oblk):
                continue
            stats["blocks_stored"] += 1
            out["block"].write(blk); raw["block"] += len(blk)
            if len(oblk) != len(blk):
                out["xor"].write(blk); raw["xor"] += len(blk)
            else:
                hdr = b"\0" * 48 + b"".join(struct.pack("<H", p // PAGE) for p in changed)
                out["xor"].write(hdr); raw["xor"] += len(hdr)
                for p in changed:
                    x = (int.from_bytes(blk[p:p + PAGE], "little") ^ int.from_bytes(oblk[p:p + PAGE], "little")).to_bytes(PAGE, "little")
                    out["xor"].write(x); raw["xor"] += PAGE
            for t in THRESHOLDS:
                k = f"page{t}"
                if len(oblk) != len(blk) or len(changed) > t:
                    out[k].write(blk); raw[k] += len(blk)
                else:
                    hdr = b"\0" * 48 + b"".join(struct.pack("<H", p // PAGE) for p in changed)
                    out[k].write(hdr); raw[k] += len(hdr)
                    for p in changed:
                        out[k].write(blk[p:p + PAGE]); raw[k] += PAGE
        per_file.append((rel, len(data), len(old), fstat[0], fstat[1]))
for f in out.values():
    f.close()
comp = {}
for k in out:
    path = f"{after}/../est-{k}.bin"
    comp[k] = len(subprocess.run(["zstd", f"-{level}", "-T2", "-c", path], check=True, capture_output=True).stdout)
    os.remove(path)
print("relation segments:", stats["files"], "changed:", stats["files_changed"])
print(f"blocks in changed files: {stats['blocks']}, stored by the block rule: {stats['blocks_stored']}")
print(f"pages in changed files: {stats['pages']}, newer than the LSN: {stats['pages_newer']} ({100 * stats['pages_newer'] / max(stats['pages'], 1):.1f} %), old LSN but bytes differ (hint bits): {stats['pages_hint_only']}")
for rel, size, oldsize, newer, hint in per_file:
    print(f"changed {rel}: {size} bytes (was {oldsize}), {size // PAGE} pages, {newer} newer than the LSN, {hint} with an old LSN but other bytes")
print(f"| rule | raw bytes | zstd -{level} bytes | vs file rule (pgBackRest incr) |")
print("|---|---|---|---|")
for k in out:
    print(f"| {k} | {raw[k]} | {comp[k]} | {comp[k] / max(comp['file'], 1):.2f} |")
