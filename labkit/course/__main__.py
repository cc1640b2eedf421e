"""``python -m labkit.course``: keep the course map's files in step, build student notebooks.

python -m labkit.course sync      rewrite contents, README table and navigation lines
python -m labkit.course check     list what is out of step with COURSE (exit 1 if anything)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labkit.course import problems, sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.course", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: here)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="rewrite the contents table, the README table and every navigation line")
    sub.add_parser("check", help="list what is out of step with COURSE")
    args = parser.parse_args(argv)
    if args.command == "sync":
        changed = sync(args.root)
        print("\n".join(f"updated {p}" for p in changed) or "everything already in step with COURSE")
        return 0
    found = problems(args.root)
    print("\n".join(found) or "everything is in step with COURSE")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
