"""A worker built on the Python API.

    python examples/dummy_worker.py --worker-id user_1 [--root ROOT] [--type T ...]

It serves thumbnail and review jobs with the handlers in examples/handlers.py
until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from handlers import handle  # noqa: E402

from chronosq import ChronosQError, Root, Worker  # noqa: E402
from chronosq import config as config_module  # noqa: E402
from chronosq import logs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--root", default=None, help="queue root (default: $CHRONOSQ_ROOT or .)")
    parser.add_argument("--type", action="append", dest="types",
                        help="job type to serve; repeat for several")
    parser.add_argument("--capacity", type=int, default=None)
    args = parser.parse_args()
    try:
        root = Root.find(args.root).require()
        config = config_module.load(root)
        logs.setup(root, "worker", config.get("logging", "level"),
                   config.get("logging", "file"), config.get("logging", "stderr"))
        worker = Worker(root, args.worker_id, args.types or ["thumbnail", "review"],
                        handler=handle, capacity=args.capacity, config=config)
        return worker.run()
    except ChronosQError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
