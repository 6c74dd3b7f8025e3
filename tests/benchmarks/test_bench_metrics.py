"""The metrics benchmark runs with tiny settings and prints lines that parse: the processor,
then one line per metric with its seconds per face and its load time."""

from __future__ import annotations

import re

from benchmarks.bench_metrics import main

LINE = re.compile(r"^(?P<label>\S+)\s+(?P<per_face>\d+\.\d+) s/face\s+load\s+(?P<load>\d+\.\d+) s$")


def test_the_benchmark_prints_a_parsable_line_per_metric(capsys):
    main(["--metrics", "ssim,psnr", "--repeats", "1", "--size", "64"])
    lines = capsys.readouterr().out.splitlines()
    processor = lines[0]
    assert processor.startswith("processor: ") and re.search(
        r"avx2 (yes|no), .*avx512_bf16 (yes|no)\b", processor
    )
    assert "median of 1 interleaved round(s) after a warm-up" in lines[1]
    rows = [LINE.match(line) for line in lines[2:]]
    assert all(rows) and [row["label"] for row in rows] == ["PSNR", "SSIM"]  # the paper's order
    assert all(float(row["per_face"]) > 0 and float(row["load"]) >= 0 for row in rows)
