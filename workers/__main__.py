"""`python -m workers [--queues fetch,media,asr,render] [--burst]`: one non-forking RQ worker."""

from __future__ import annotations

import argparse
import logging
import sys

from clipper.context import Context
from clipper.errors import ClipperError
from clipper.pipeline.worker import parse_queues, run_worker
from clipper.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--queues", default="", help="comma-separated (default: all)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
        run_worker(Context.build(settings), parse_queues(args.queues), burst=args.burst)
    except ClipperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
