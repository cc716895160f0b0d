"""Command line: `python -m dlnb data list|pull|verify|pack`, `doctor`, `serve --model FILE` and
`retrain --state DIR --live FILE.csv --labelled FILE.csv`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m dlnb`."""
    parser = argparse.ArgumentParser(prog="python -m dlnb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="versions, devices, memory and precision support")
    data = sub.add_parser("data", help="datasets: list, pull, verify, pack")
    actions = data.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="registered datasets and whether they are cached")
    pull = actions.add_parser("pull", help="fetch and cache datasets (or restore an archive)")
    pull.add_argument("names", nargs="*", help="datasets (default: all)")
    pull.add_argument("--from", dest="archive", help="restore from an archive written by `pack`")
    pull.add_argument(
        "--allow-unverified",
        action="store_true",
        help="with --from: also restore datasets without pinned checksums (marked UNVERIFIED)",
    )
    verify = actions.add_parser("verify", help="check cached datasets against their checksums")
    verify.add_argument("names", nargs="*")
    pack = actions.add_parser("pack", help="write cached datasets into one archive")
    pack.add_argument("archive", help="output file, e.g. dlnb-data.tar")
    pack.add_argument("names", nargs="*")
    sub.add_parser("serve", help="serve an exported ONNX model over HTTP (127.0.0.1); serve -h")
    retrain = sub.add_parser("retrain", help="one step of retraining on drift (cron-friendly)")
    retrain.add_argument("--state", required=True, help="folder written by lifecycle.init_state")
    retrain.add_argument("--live", required=True, help="CSV of the live window's inputs")
    retrain.add_argument("--labelled", required=True, help="CSV of recent rows with the target")
    retrain.add_argument("--track", help="MLflow root to log the decision to (default: none)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:  # the service's own parser (its imports are heavy: only when asked)
        from dlnb.deploy import serve

        serve.main(argv[1:])
        return 0
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from dlnb.runtime import doctor

        doctor()
        return 0
    if args.command == "retrain":
        return _retrain(args)
    from dlnb.data import registry

    try:
        return _data(args)
    except (
        registry.ChecksumError,
        registry.CacheError,
        registry.DatasetUnavailable,
        FileNotFoundError,
        KeyError,
        ValueError,
    ) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1


def _retrain(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from dlnb.lifecycle.registry import RegistryError
    from dlnb.lifecycle.retrain import retrain_step

    try:
        live, labelled = pd.read_csv(args.live), pd.read_csv(args.labelled)
        decision = retrain_step(args.state, live, labelled, track=args.track)
    except (RegistryError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(decision.to_json()))
    return 0


def _data(args: argparse.Namespace) -> int:
    from dlnb.data import archive, registry

    if args.action == "list":
        for name in registry.names():
            spec = registry.get_spec(name)
            cached = "cached" if registry.cache_path(name).exists() else "not cached"
            print(f"{name:<16} {cached:<11} {spec.description} [{spec.licence}]")
        print(f"cache: {registry.data_dir()}")
    elif args.action == "pull" and args.archive:
        for name in archive.unpack(args.archive, allow_unverified=args.allow_unverified):
            pinned = registry.get_spec(name).checksums is not None
            note = "" if pinned else " (UNVERIFIED: no pinned checksums)"
            print(f"restored {name} -> {registry.cache_path(name)}{note}")
    elif args.action == "pull":
        for name in archive.pull(args.names or None):
            print(f"ok {name} -> {registry.cache_path(name)}")
    elif args.action == "verify":
        results = archive.verify(args.names or None)
        for name, status in results.items():
            print(f"{name:<16} {status}")
        return 1 if any(s.startswith("FAILED") for s in results.values()) else 0
    elif args.action == "pack":
        path = archive.pack(args.archive, args.names or None)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
