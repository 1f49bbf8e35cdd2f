"""The worker's local records: written atomically, moved aside when finished, refused when
unreadable."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from decloud.worker.journal import Journal, JournalError
from tests.worker.replicas import TASKID, machine_in


def test_a_record_is_written_whole_and_read_back_by_a_new_journal(tmp_path: Path) -> None:
    record = machine_in("contributed").record
    Journal(tmp_path).save(record)

    (read,) = Journal(tmp_path).active()
    assert read == record
    leftovers = [p.name for p in (tmp_path / "replicates").iterdir() if p.name.startswith(".")]
    assert leftovers == [], "no temporary file is left behind"


def test_a_finished_record_is_moved_aside_and_pruned_when_old(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    record = machine_in("done").record
    journal.save(record)
    journal.finish(record)

    assert journal.active() == []
    assert journal.finished(TASKID) == record
    assert journal.knows(TASKID)
    assert journal.prune(time.time(), keep_s=3600) == 0
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(tmp_path / "finished" / f"0x{TASKID.hex()}.json", (week_ago, week_ago))
    assert journal.prune(time.time(), keep_s=3600) == 1
    assert not journal.knows(TASKID)


def test_an_unreadable_record_stops_the_worker_rather_than_guess(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    path = tmp_path / "replicates" / f"0x{TASKID.hex()}.json"
    path.write_text('{"version": 1, "state": "contri')
    with pytest.raises(JournalError, match="whether the worker voted"):
        journal.active()
