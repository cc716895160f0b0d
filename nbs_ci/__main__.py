"""Command line: `python -m nbs_ci run --profile smoke|full [--only NAME ...] [--out DIR]`, `check`."""

from __future__ import annotations

import argparse
import sys

from nbs_ci.checks import check_repo
from nbs_ci.manifest import PROFILES, ManifestError
from nbs_ci.runner import run


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m nbs_ci", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser(
        "run", help="execute notebooks, check gates, write summary.json and report.html"
    )
    p_run.add_argument("--profile", choices=PROFILES, required=True)
    p_run.add_argument("--only", nargs="+", metavar="NAME", help="run only these manifest entries")
    p_run.add_argument("--out", help="output folder (default: runs/<profile>/)")
    p_run.add_argument(
        "--mlflow",
        metavar="PATH",
        help="MLflow store folder the run is logged to (default: mlflow/ beside --out; off: none)",
    )
    p_check = sub.add_parser("check", help="check committed notebooks and the manifest")
    for p in (p_run, p_check):
        p.add_argument("--manifest", help="manifest file (default: nbs_ci/manifest.yaml)")
        p.add_argument("--notebooks", help="notebooks folder (default: notebooks/)")
    args = parser.parse_args(argv)

    try:
        if args.command == "check":
            problems = check_repo(args.manifest, args.notebooks)
            for problem in problems:
                print(problem)
            print(f"{len(problems)} problem(s)" if problems else "notebooks and manifest are clean")
            return 1 if problems else 0
        summary = run(
            args.profile,
            only=args.only,
            out=args.out,
            manifest=args.manifest,
            notebooks_dir=args.notebooks,
            mlflow_store=args.mlflow,
        )
    except (ManifestError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
