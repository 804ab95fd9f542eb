"""The speaker-independent k-fold protocol (affectkit.engine.cv, ``affectkit cv``): folds by whole groups with
hand-checked splits, and one real run over RAVDESS actors through the command line."""
from __future__ import annotations

import json

import pytest

from affectkit.cli import main
from affectkit.engine.cv import group_folds
from affectkit.errors import ConfigError


def test_group_folds_of_twelve_actors():
    plan = group_folds(list(range(12, 0, -1)), 4, 2)  # any order in, sorted blocks out
    assert [p["test"] for p in plan] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    assert [p["val"] for p in plan] == [[4, 5], [7, 8], [10, 11], [1, 2]]
    assert plan[0]["train"] == [6, 7, 8, 9, 10, 11, 12] and plan[3]["train"] == [3, 4, 5, 6, 7, 8, 9]
    for p in plan:  # every group once per fold; odd (male) and even (female) RAVDESS actors in every split
        assert sorted(p["test"] + p["val"] + p["train"]) == list(range(1, 13))
        assert all({g % 2 for g in p[s]} == {0, 1} for s in ("test", "val", "train"))
    # each group is tested exactly once over the folds
    assert sorted(g for p in plan for g in p["test"]) == list(range(1, 13))
    uneven = group_folds(["a", "b", "c", "d", "e"], 2, 1)
    assert [p["test"] for p in uneven] == [["a", "b"], ["c", "d", "e"]] and uneven[0]["val"] == ["c"]
    with pytest.raises(ConfigError, match="cannot make"):
        group_folds([1, 2, 3], 2, 1)
    with pytest.raises(ConfigError, match="folds"):
        group_folds([1, 2, 3, 4], 1)


def test_cv_command_on_real_actors(shared_data, tmp_path, capsys):
    out = tmp_path / "cv.json"
    rc = main(["cv", "audio/ravdess_cnn_logmel.yaml", "-o", f"data.path={shared_data / 'ravdess_dev'}",
               "-o", "model.args.channels=[4,8,8,8]", "-o", "train.epochs=1", "-o", f"output.root={tmp_path}",
               "-o", "output.run_name=cnn", "--folds", "2", "--val-groups", "1", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "2-fold test accuracy" in printed and "1,2" in printed
    result = json.loads(out.read_text())
    assert result["group_by"] == "actor" and result["num_folds"] == 2
    assert [f["groups"]["test"] for f in result["folds"]] == [[1, 2], [3, 4]]
    assert [f["groups"]["val"] for f in result["folds"]] == [[3], [1]]
    assert all(f["test"]["num_samples"] == 120 for f in result["folds"])  # two actors of 60 clips each
    mean = sum(f["test"]["accuracy"] for f in result["folds"]) / 2
    assert result["accuracy_mean"] == pytest.approx(mean)
    assert (tmp_path / "cnn-fold0").is_dir() and (tmp_path / "cnn-fold1").is_dir()


def test_cv_needs_group_by(tmp_path):
    with pytest.raises(ConfigError, match="group_by"):
        from affectkit.engine.cv import group_cross_validate

        group_cross_validate("vaanet/vaanet_synth.yaml", [f"data.path={tmp_path}"], folds=2)
