"""Top frames of py-spy collapsed stacks (`make bench` with --profile writes them).

`python -m bench.profile_top var/bench/profile/status.txt [--top 25] [--match services]`
prints the share of samples each function is on the stack of (inclusive) and at the top
of (self), so the per-job budget can be split by what the process does.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def _name(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)` (lines merged)."""
    frame = _LINE.sub(")", frame)
    func, _, where = frame.partition(" (")
    return f"{func} ({where.rsplit('/', 1)[-1]}" if where else func


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only frames whose text contains this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for name in set(frames):
            if args.match in name:
                inclusive[name] += n
    print(f"{args.file}: {total} samples")
    print("inclusive:")
    for name, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("self:")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
