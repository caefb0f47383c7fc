"""The image-folder benchmark keeps working (tiny run); its figures are measured, not asserted."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, run_cli


@pytest.mark.slow
def test_image_folder_bench_runs_and_reports_images_per_second(tmp_path):
    out = tmp_path / "folder.json"
    proc = run_cli(["--tiny", "--work-dir", str(tmp_path / "files"), "--out", str(out)],
                   script=ROOT / "benchmarks" / "bench_folder.py", timeout=900)  # fmt: skip
    assert "img/s" in proc.stdout and "ratio" in proc.stdout
    result = json.loads(out.read_text())
    assert result["files"] == 2 * 10 * 20  # 20 of each digit, once as PNG and once as JPEG
    assert {p.suffix for p in (tmp_path / "files" / "all").rglob("*.*")} == {".png", ".jpg"}
    for side in ("descentlab", "hand_loop"):
        assert result["images_per_second"][side] > 0
    assert result["ratio"] == pytest.approx(
        result["seconds_per_epoch"]["descentlab"]["median"]
        / result["seconds_per_epoch"]["hand_loop"]["median"]
    )
