"""``python -m labkit.course``: the course map's files, the learner's notebooks, JupyterLab.

python -m labkit.course sync            rewrite contents, README table and navigation lines
python -m labkit.course check           list what is out of step with COURSE (exit 1 if anything)
python -m labkit.course student         write missing student notebooks to course/, report newer ones
python -m labkit.course refresh 07      replace course/07-... by the newest version (old copy to course/backup/)
python -m labkit.course lab             open course/ in JupyterLab, as a learner (make lab)
python -m labkit.course lab --instructor   open notebooks/ with nbgrader (make lab-instructor)
python -m labkit.course binder          the Binder link of the README (--from-git: of this clone's remote)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labkit.course import problems, sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labkit.course",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: here)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="rewrite the contents table, the README table and every navigation line")
    sub.add_parser("check", help="list what is out of step with COURSE")
    student = sub.add_parser("student", help="write the missing student notebooks, report newer versions")
    student.add_argument("--out", type=Path, default=None, help="the learner's folder (default: ROOT/course)")
    refresh = sub.add_parser("refresh", help="replace one learner notebook by its newest version")
    refresh.add_argument("nb", help="the notebook's number (07) or file name")
    refresh.add_argument("--out", type=Path, default=None, help="the learner's folder (default: ROOT/course)")
    binder = sub.add_parser("binder", help="print the Binder launch link")
    binder.add_argument("--from-git", action="store_true", help="for this clone's GitHub 'origin' remote")
    lab = sub.add_parser("lab", help="open the course in JupyterLab")
    lab.add_argument("--instructor", action="store_true", help="open notebooks/ (solutions, nbgrader)")
    args = parser.parse_args(argv)
    root = args.root.resolve()

    if args.command == "sync":
        changed = sync(root)
        print("\n".join(f"updated {p}" for p in changed) or "everything already in step with COURSE")
        return 0
    if args.command == "check":
        found = problems(root)
        print("\n".join(found) or "everything is in step with COURSE")
        return 1 if found else 0
    if args.command == "student":
        from labkit.course.student import update_course

        folder = args.out or root / "course"
        print(update_course(root, folder).message(str(folder)))
        return 0
    if args.command == "refresh":
        from labkit.course.student import find_entry
        from labkit.course.student import refresh as refresh_one

        folder = args.out or root / "course"
        try:
            entry = find_entry(args.nb)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        backup = refresh_one(root, folder, args.nb)
        kept = f"; your previous copy is {backup}" if backup else ""
        print(f"{folder / entry.file} is now the newest version{kept}")
        return 0
    if args.command == "binder":
        return _binder(root, from_git=args.from_git)
    from labkit.course.lab import open_lab

    open_lab(root, instructor=args.instructor)
    return 0  # not reached: open_lab replaces this process


def _binder(root: Path, *, from_git: bool) -> int:
    import subprocess

    from labkit.course import binder_repository, binder_url, github_repository

    repository, branch = binder_repository(root)
    if from_git:
        remote = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True
        ).stdout.strip()
        found = github_repository(remote)
        if found is None:
            print(f"this clone has no GitHub 'origin' remote (found {remote or 'none'})", file=sys.stderr)
            return 1
        print(binder_url(found, branch))
        if found != repository:
            print(
                f"(the README's badge launches {repository}; to point it at {found}, set "
                f'binder-repository = "{found}" in pyproject.toml and run make course-map)',
                file=sys.stderr,
            )
        return 0
    print(binder_url(repository, branch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
