"""Summarise a py-spy raw (collapsed stacks) profile: where the server's time goes.

    .venv/bin/python bench/profile.py bench/results/.profile-ping.txt [--top 25]

Prints, per thread, the functions with the most samples on top of the stack (self) and
the most samples anywhere in the stack (inclusive), as percentages of all samples.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, location = frame.partition(" (")
    file = location.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0]
        names = [frame_name(f) for f in frames[1:]]
        total += count
        threads[thread] += count
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        raise SystemExit("no samples")
    print(f"{total} samples")
    for thread, count in threads.most_common():
        print(f"  {100 * count / total:5.1f}%  {thread}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\n{title}:")
        for name, count in counter.most_common(args.top):
            print(f"  {100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
