"""`decloud bench market` runs end to end (on a small book: the figures are not checked)."""

from __future__ import annotations

from decloud.market import bench


def test_the_benchmark_publishes_every_order_and_times_the_queries() -> None:
    report = bench.run(
        open_orders=300, publishes=60, single_publishes=5, batch_size=20, connections=2,
        queries=100,
    )  # fmt: skip
    assert report["publish_per_s"] > 0
    assert report["publish"]["single_per_s"] > 0
    assert (report["publish"]["batch_size"], report["publish"]["connections"]) == (20, 2)
    assert 0 < report["query_ms"]["p50"] <= report["query_ms"]["p99"]
    assert report["open_orders"] == 300
