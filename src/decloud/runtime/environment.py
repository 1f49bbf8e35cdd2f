"""The environment an app sees (DESIGN.md section 3, "App contract").

Every run gets decloud's own names and the names iExec workers set, so that apps written for
iExec run unchanged. Paths are the ones inside the sandbox: the input directory is mounted
read-only at /iexec_in, the output directory at /iexec_out.

| decloud                    | iExec                              | value                      |
|----------------------------|------------------------------------|----------------------------|
| DECLOUD_IN                 | IEXEC_IN, IEXEC_INPUT_FILES_FOLDER | /iexec_in                  |
| DECLOUD_OUT                | IEXEC_OUT                          | /iexec_out                 |
| DECLOUD_DEAL_ID            | (none)                             | 0x-hex bytes32             |
| DECLOUD_TASK_ID            | IEXEC_TASK_ID                      | 0x-hex bytes32             |
| DECLOUD_TASK_INDEX         | IEXEC_BOT_TASK_INDEX               | the task's index in deal   |
| DECLOUD_BAG_FIRST_INDEX    | IEXEC_BOT_FIRST_INDEX              | first index of the deal    |
| DECLOUD_BAG_SIZE           | IEXEC_BOT_SIZE                     | tasks in the deal (>= 1)   |
| DECLOUD_DATASET_ADDRESS    | IEXEC_DATASET_ADDRESS              | dataset address, or zero   |
| DECLOUD_DATASET_FILENAME   | IEXEC_DATASET_FILENAME             | its file name in /iexec_in |
| DECLOUD_INPUT_FILES_NUMBER | IEXEC_INPUT_FILES_NUMBER           | number of input files      |
| DECLOUD_INPUT_FILE_NAME_n  | IEXEC_INPUT_FILE_NAME_n            | file n (from 1) in /iexec_in |

The dataset file name is unset for a task without a dataset.

iExec's secret variables (IEXEC_APP_DEVELOPER_SECRET, IEXEC_REQUESTER_SECRET_n) exist only
inside TEE sessions, where the SMS provides them; they are not set here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from decloud.protocol.digest import APP_OUTPUT_DIR

APP_INPUT_DIR = PurePosixPath("/iexec_in")
"""Where an app sees its (read-only) input directory."""
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class TaskContext:
    """What the app is told about the task it runs: ids, its place in the bag of tasks, and
    the names of its dataset file and input files inside the input directory."""

    deal_id: bytes
    task_id: bytes
    task_index: int
    bag_first_index: int = 0
    bag_size: int = 1
    dataset_address: str | None = None
    dataset_filename: str | None = None
    input_files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("deal_id", "task_id"):
            if len(getattr(self, name)) != 32:
                raise ValueError(f"task context: {name} must be 32 bytes")
        if self.bag_size < 1 or not (
            0 <= self.bag_first_index <= self.task_index < self.bag_first_index + self.bag_size
        ):
            raise ValueError(
                f"task context: index {self.task_index} is outside the bag "
                f"[{self.bag_first_index}, {self.bag_first_index + self.bag_size})"
            )
        if (self.dataset_address is None) != (self.dataset_filename is None):
            raise ValueError("task context: a dataset needs both an address and a file name")
        names = self.input_files + ((self.dataset_filename,) if self.dataset_filename else ())
        for name in names:
            _check_file_name(name)


def _check_file_name(name: str) -> None:
    """A file directly in the input directory: the app joins it to IEXEC_IN, so a path would
    point elsewhere."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"task context: {name!r} is not a plain file name")


def app_environment(task: TaskContext) -> dict[str, str]:
    """The environment variables of the module docstring's table."""
    shared = {
        "TASK_ID": "0x" + task.task_id.hex(),
        "DATASET_ADDRESS": task.dataset_address or ZERO_ADDRESS,
        "INPUT_FILES_NUMBER": str(len(task.input_files)),
    }
    if task.dataset_filename is not None:
        shared["DATASET_FILENAME"] = task.dataset_filename
    for number, name in enumerate(task.input_files, start=1):
        shared[f"INPUT_FILE_NAME_{number}"] = name
    decloud = {
        "IN": str(APP_INPUT_DIR),
        "OUT": str(APP_OUTPUT_DIR),
        "DEAL_ID": "0x" + task.deal_id.hex(),
        "TASK_INDEX": str(task.task_index),
        "BAG_FIRST_INDEX": str(task.bag_first_index),
        "BAG_SIZE": str(task.bag_size),
    }
    iexec = {
        "IN": str(APP_INPUT_DIR),
        "OUT": str(APP_OUTPUT_DIR),
        "INPUT_FILES_FOLDER": str(APP_INPUT_DIR),
        "BOT_TASK_INDEX": str(task.task_index),
        "BOT_FIRST_INDEX": str(task.bag_first_index),
        "BOT_SIZE": str(task.bag_size),
    }
    return {f"DECLOUD_{name}": value for name, value in (decloud | shared).items()} | {
        f"IEXEC_{name}": value for name, value in (iexec | shared).items()
    }
