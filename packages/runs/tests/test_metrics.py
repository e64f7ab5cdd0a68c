"""metrics.jsonl never holds an epoch twice and refuses to read what is not a record."""

from __future__ import annotations

import pytest
from localkit_runs import METRICS_NAME, RunFolderError, read_metrics, record_metrics


def test_an_epoch_logged_again_replaces_itself_and_every_later_one(tmp_path):
    for epoch in range(4):
        record_metrics(tmp_path, {"epoch": epoch, "split": "train"}, {"epoch": epoch, "split": "test"})
    record_metrics(tmp_path, {"epoch": 2, "split": "train", "again": True})
    assert [(r["epoch"], r["split"]) for r in read_metrics(tmp_path)] == [
        (0, "train"),
        (0, "test"),
        (1, "train"),
        (1, "test"),
        (2, "train"),
    ]


@pytest.mark.parametrize("records", [(), ({"epoch": 0}, {"epoch": 1}), ({"epoch": "0"},), ({"epoch": True},)])
def test_records_of_no_or_several_epochs_are_refused(tmp_path, records):
    with pytest.raises(ValueError, match="the records of one epoch"):
        record_metrics(tmp_path, *records)


@pytest.mark.parametrize("line", ["not json", "[1]", '{"loss": 1}', '{"epoch": 1.5}'])
def test_a_line_that_is_not_a_record_is_named(tmp_path, line):
    (tmp_path / METRICS_NAME).write_text('{"epoch": 0}\n' + line + "\n")
    with pytest.raises(
        RunFolderError, match=rf"{METRICS_NAME} line 2 is not a metrics record.*repair or delete"
    ):
        read_metrics(tmp_path)
