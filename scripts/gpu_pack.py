#!/usr/bin/env python3
"""Cut a corpus slice into tar packs that each fit one call to a borrowed GPU machine.

One call carries at most 64 MiB, and the tracked work tree travels with every call, so a slice
larger than what is left goes over several calls; the machine keeps the packs of earlier calls
while it stays warm, and ``scripts/gpu_train.sh`` unpacks them (``HUSHLAB_PACKS=N`` makes it
stop when one is missing). The last pack also carries the wheels (``.whl``), so it gets the
manifest and validation files and leaves room for them.

    python scripts/gpu_pack.py .gpudata/corpus          # -> .gpudata/pack1.tar, pack2.tar, ...

Units are folders two levels under speech/ and noise/ (one per split and source) and the
top-level files; they are placed largest first into the first pack with room.

Shipped weights are most of the tracked tree (15 MB each) and would travel with every call. Name
the ones the run needs with ``--restore`` (they go into the packs, and ``gpu_train.sh`` puts them
back at their paths) and the ones it does not with ``--away``; neither is counted as tree, so
take both out of the work tree while the calls run (``git checkout -- models`` brings them back):

    python scripts/gpu_pack.py .gpudata/corpus --restore models/shipped/baseline \
        --away models/shipped models/teachers
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

CALL_LIMIT = 64 * 2**20


def _member_bytes(path: Path) -> int:
    """What ``path`` takes in a tar file: its header blocks (long names take more) and its
    data padded to 512-byte blocks."""
    st = path.stat()
    info = tarfile.TarInfo(str(path))
    info.size = st.st_size if path.is_file() else 0
    info.mtime = st.st_mtime  # a fractional time takes an extended (pax) header
    return len(info.tobuf(tarfile.DEFAULT_FORMAT)) + -(-info.size // 512) * 512


def tree_bytes(path: Path) -> int:
    return _member_bytes(path) + sum(_member_bytes(p) for p in path.rglob("*"))


def tracked_bytes(repo: Path, away: list[str] = ()) -> int:
    """Bytes of the tracked files that travel with every call: those under ``away`` do not."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=repo, check=True, capture_output=True
    ).stdout.split(b"\0")
    prefixes = tuple(a.rstrip("/") + "/" for a in away)  # a folder, or a file itself
    paths = [n.decode() for n in names if n]
    return sum(
        (repo / n).stat().st_size
        for n in paths
        if not (n + "/").startswith(prefixes) and (repo / n).exists()
    )


def units(corpus: Path) -> tuple[list[Path], list[Path]]:
    """(training units, units the last pack must hold: manifest, mixtures, validation)."""
    train, last = [], []
    for top in sorted(corpus.iterdir()):
        if top.is_dir() and top.name in ("speech", "noise"):
            for split in sorted(top.iterdir()):
                for source in sorted(split.iterdir()):
                    (train if split.name == "train" else last).append(source)
        else:
            last.append(top)
    return train, last


def plan(corpus: Path, budget: int, last_budget: int, extra: list[Path] = ()) -> list[list[Path]]:
    """Packs of units (``extra``: repository paths placed like training units)."""
    train, last = units(corpus)
    train = train + list(extra)
    packs: list[list[Path]] = [[]]
    room = [last_budget - sum(tree_bytes(u) for u in last)]
    if room[0] < 0:
        raise SystemExit("the manifest and validation files alone do not fit one call")
    for u in sorted(train, key=tree_bytes, reverse=True):
        size = tree_bytes(u)
        if size > budget:
            raise SystemExit(f"{u} ({size / 1e6:.1f} MB) does not fit one call: cut the slice")
        for i, r in enumerate(room):
            if size <= r:
                packs[i].append(u)
                room[i] -= size
                break
        else:
            packs.insert(0, [u])
            room.insert(0, budget - size)
    packs[-1] += last
    return packs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path, help="a slice made by 'hushlab corpus subset'")
    p.add_argument("--wheels", type=Path, default=Path(".whl"), help="carried by the last call")
    p.add_argument("--margin-mb", type=float, default=0.5, help="left free in every call")
    p.add_argument("--restore", nargs="*", default=[], help="repository paths the run needs")
    p.add_argument("--away", nargs="*", default=[], help="repository paths that stay home")
    a = p.parse_args(argv)
    repo = Path.cwd()
    budget = CALL_LIMIT - tracked_bytes(repo, a.away + a.restore) - int(a.margin_mb * 1e6)
    wheels = tree_bytes(a.wheels) if a.wheels.exists() else 0
    restore = [Path(r) for r in a.restore]
    packs = plan(a.corpus, budget, budget - wheels, restore)
    out = a.corpus.parent
    for old in out.glob("pack*.tar"):
        old.unlink()
    for i, members in enumerate(packs, 1):
        path = out / f"pack{i}.tar"
        with tarfile.open(path, "w") as tar:
            for m in members:
                name = f"restore/{m}" if m in restore else str(m.relative_to(out))
                tar.add(m, arcname=name)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {len(members)} parts")
    print(
        f"room per call: {budget / 1e6:.1f} MB; send pack1..pack{len(packs) - 1} in calls of "
        f"their own, pack{len(packs)} with .whl and HUSHLAB_PACKS={len(packs)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
