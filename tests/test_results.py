"""Results files (facelib.results): what measuring commands write, and the README's tables made from them."""

import json
import math

import pytest
import torch

from facelib import results
from facelib.config import REPO_DIR
from facelib.results import README_BEGIN, README_END


def test_write_results_records_provenance_and_makes_values_json_safe(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    path = results.write_results("bench_demo", {"rows": [{"ms": torch.tensor(1.5), "gap": math.nan, "file": tmp_path}]})
    assert path == tmp_path / "bench_demo.json"
    record = json.loads(path.read_text())
    assert record["name"] == "bench_demo" and record["rows"] == [{"ms": 1.5, "gap": None, "file": str(tmp_path)}]
    assert record["machine"]["cpu_cores"] and record["machine"]["torch"] == torch.__version__ and "UTC" in record["measured"]
    assert results.read_results("bench_demo") == record and results.read_results("missing") is None
    elsewhere = results.write_results("bench_demo", {"rows": []}, path=tmp_path / "other.json")
    assert elsewhere == tmp_path / "other.json" and elsewhere.is_file()
    with pytest.raises(ValueError, match="letters, digits"):
        results.write_results("../escape", {})
    with pytest.raises(ValueError, match="own entries"):
        results.write_results("bench_demo", {"machine": "mine"})
    import dataclasses

    import numpy as np

    @dataclasses.dataclass
    class Settings:
        steps: int = 3

    odd = {"array": np.ones((2, 2)), "settings": Settings(), "set": {1}, "weights": REPO_DIR / "data" / "x.pt", "other": object}
    record = json.loads(results.write_results("bench_odd", odd).read_text())
    assert record["array"] == [[1.0, 1.0], [1.0, 1.0]] and record["settings"] == {"steps": 3} and record["set"] == [1]
    assert record["weights"] == "data/x.pt" and isinstance(record["other"], str) and record["fast_mode"] in (True, False)


def test_tables_come_from_the_files_and_the_readme_block_is_replaced(tmp_path):
    (tmp_path / "bench_render.json").write_text(json.dumps({
        "name": "bench_render", "command": "python -m facelib bench render", "measured": "2026-12-04 21:00 UTC",
        "machine": {"cpu_cores": 2, "torch": "2.11.0"},
        "rows": [{"device": "cpu", "batch": 1, "size": 224, "vertices": 35721, "torch_ms": 36.1, "pytorch3d_ms": 11317.0,
                  "pytorch3d/torch": 313.2}]}))
    text = results.markdown_tables(tmp_path)
    assert "| cpu | 1 | 224 | 35721 | 36.1 | 11317.0 | 313.2 |" in text and "2-core CPU, torch 2.11.0" in text
    assert results.markdown_tables(tmp_path / "empty") == "(no results files yet)\n"
    (tmp_path / "eval_regressor.json").write_text(json.dumps({
        "name": "eval_regressor", "command": "python -m facelib eval-regressor", "measured": "2026-12-04 23:00 UTC",
        "machine": {"cpu_cores": 2, "torch": "2.11.0"},
        "benchmark": {"n": 100, "size": 224, "fit_steps": 300, "refit_steps": 150,
                      "methods": {"mean face": {k: 2.0 for k, _ in results.COARSE_COLUMNS},
                                  "regressor": {k: 1.23456 for k, _ in results.COARSE_COLUMNS} | {"skin_de00": None}},
                      "turned": {"min_yaw_deg": 45.0, "n": 0, "yaw_deg": {"mean face": None, "regressor": None}},
                      "expressive_mouth": {"threshold_mm": 2.5, "n": 3, "vs_neutral": {"mean face": 1.0, "regressor": 0.61234}}}}))
    text = results.markdown_tables(tmp_path)
    assert "100 benchmark faces at 224 px, fits of 300 + 150 steps" in text
    assert "| mean face | " + " | ".join(["2"] * 8) + " |" in text and "| regressor | " + " | ".join(["1.23"] * 7) + " |  |" in text
    # The subsets under the table; a subset with no faces has no means (null in the file).
    assert "- yaw deg, 0 faces turned at least 45 deg: mean face n/a, regressor n/a" in text
    assert "3 faces whose mouth moves over 2.5 mm: mean face 1, regressor 0.612" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_BEGIN}\nold\n{README_END}\n\nafter\n")
    assert results.update_readme(readme, tmp_path) and not results.update_readme(readme, tmp_path)
    assert results.readme_block(readme.read_text()) == text and readme.read_text().endswith(f"{README_END}\n\nafter\n")
    with pytest.raises(ValueError, match="no results markers"):
        results.readme_block("# no markers")


def test_the_readme_tables_are_the_committed_results_files():
    import shutil
    import subprocess

    if shutil.which("git") and (REPO_DIR / ".git").exists():
        changed = subprocess.run(["git", "status", "--porcelain", "--", "results"], cwd=REPO_DIR, capture_output=True, text=True)
        if changed.returncode == 0 and changed.stdout.strip():
            pytest.skip("results/ holds measurements of this machine that are not committed: "
                        "python -m facelib results --readme puts them into README.md")
    readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    assert results.readme_block(readme) == results.markdown_tables(REPO_DIR / "results"), (
        "README.md's measured tables differ from results/*.json: run python -m facelib results --readme")


def test_bench_writes_its_results_file(tmp_path, monkeypatch, capsys):
    from facelib.cli import main

    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    assert main(["bench", "synthetic", "--batch", "2", "--size", "64", "--level", "0", "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "bench_synthetic.json").read_text())
    assert record["command"] == "python -m facelib bench synthetic --batch 2 --size 64 --level 0 --device cpu"
    assert record["rows"][0]["batch"] == 2
    assert "wrote" in capsys.readouterr().out
