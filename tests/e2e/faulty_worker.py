"""`python -m tests.e2e.faulty_worker CONFIG`: `decloud worker run` with lying runtimes.

The worker is built from its config exactly as the command builds it, then each of its
runtimes is wrapped in `FaultyRuntime`, which runs the app for real and corrupts the result
before the digest: a dishonest worker, as a process of its own, for the consensus tests.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from decloud.runtime.testing import FaultyRuntime
from decloud.worker import build_worker
from decloud.worker.settings import load_worker_settings


def main(config: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker = build_worker(load_worker_settings(config))
    worker.shell.runtimes = {
        kind: FaultyRuntime(runtime) for kind, runtime in worker.shell.runtimes.items()
    }

    def stop(_number: int, _frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        worker.run()
    finally:
        worker.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
