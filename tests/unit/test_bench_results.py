"""The performance document reports a scenario's newest result, c100k only at full size."""

from __future__ import annotations

import json

from bench import c100k, results


def write(directory, name: str, options: dict) -> None:
    (directory / name).write_text(json.dumps({"options": options, "servers": {}}))


def test_a_smaller_c100k_study_after_a_full_run_is_not_what_the_document_reports(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    write(tmp_path, "c100k-20261201T000000Z.json", {"connections": 100_000, "no_reference": False})
    write(tmp_path, "c100k-20261202T000000Z.json", {"connections": 30_000, "no_reference": True})
    write(tmp_path, "c100k-20261203T000000Z.json", {"connections": 100_000, "no_reference": True})
    assert results.newest("c100k")["_file"] == "c100k-20261203T000000Z.json"
    reported = results.newest("c100k", c100k.full_size)
    assert reported["_file"] == "c100k-20261201T000000Z.json"
    assert results.newest("storm") is None
