"""Entry point of a supervisor's child: `python -m chronosq.child ROLE ROOT`."""

from __future__ import annotations

import logging
import sys

from chronosq import config as config_module
from chronosq import logs
from chronosq.ingest import Ingest
from chronosq.layout import Root
from chronosq.recovery import Recovery
from chronosq.scheduler import Scheduler
from chronosq.service import Service, active_config_path

ROLES: dict[str, type[Service]] = {
    "ingest": Ingest,
    "scheduler": Scheduler,
    "recovery": Recovery,
}

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    role, root_path = argv
    root = Root.find(root_path)
    config = config_module.load(root, active_config_path(root))
    logs.setup(
        root,
        role,
        config.get("logging", "level"),
        config.get("logging", "file"),
        config.get("logging", "stderr"),
    )
    try:
        return ROLES[role](root, config).run()
    except Exception:
        logger.exception("process.crashed")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
