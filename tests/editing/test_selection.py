"""Editor checkpoints are chosen on validation faces: identities disjoint from training and test."""

import json

import pytest
import torch

from pipeline.config import load_config

QUIET = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import os

    from pipeline.ingest import prepare_data

    root = tmp_path_factory.mktemp("selection")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cfg = load_config("tiny", {"output_dir": str(root / "run"), "workers": 1, "data.valid_identities": 4,
                                   "editor.iterations": 6, "editor.select_every": 2, "editor.valid_images": 64,
                                   "evaluation.judge_steps": 20})
        summary = prepare_data(cfg, progress=QUIET)
        yield cfg, summary
    finally:
        os.chdir(cwd)


def test_the_paper_split_carves_validation_identities_out_of_training(run):
    from pipeline.celeba import CelebA, paper_split
    from pipeline.ingest import resolve_sources

    cfg, summary = run
    assert summary["valid"]["images"] > 0
    split = paper_split(CelebA.open(resolve_sources(cfg, progress=QUIET).celeba_dir), test_identities=6, valid_identities=4)
    split.check_disjoint()
    assert len(split.valid_identities) == 4 and not split.valid_identities & (split.train_identities | split.test_identities)
    plain = paper_split(CelebA.open(resolve_sources(cfg, progress=QUIET).celeba_dir), test_identities=6)
    assert plain.train_identities == split.train_identities | split.valid_identities  # 0 keeps the paper's split


def test_the_validator_scores_on_validation_identities_only(run):
    from editing.selection import Validator
    from pipeline.layout import RunLayout
    from pipeline.shards import ShardStore

    cfg, _ = run
    validator = Validator.for_run(cfg, QUIET)
    table = ShardStore(RunLayout(cfg).originals).read_table(columns=["identity", "split"])
    by_split = {s: set() for s in ("train", "valid", "test")}
    for ident, split in zip(table["identity"].to_pylist(), table["split"].to_pylist()):
        by_split[split].add(ident)
    faces = set(validator.pool.identities.tolist())
    assert faces and faces <= by_split["valid"]
    assert not faces & by_split["train"] and not faces & by_split["test"]
    # each attribute is judged on faces balanced between its two directions, as far as the split allows
    chosen = validator.faces("eyeglasses")
    have = int(validator.pool.labels("eyeglasses").sum())
    assert len(chosen.images) == min(64, len(validator.pool.images))
    assert int(chosen.labels("eyeglasses").sum()) == min(have, 32)
    assert set(chosen.sample_ids) <= set(validator.pool.sample_ids) and len(set(chosen.sample_ids)) == len(chosen.sample_ids)


def test_the_validator_measures_the_mask_as_the_test_evaluation_does(run):
    """The mask's mass inside the true region on validation faces is the figure `evaluate_editor` reports on test faces."""
    from editing.evaluate import evaluate_editor
    from editing.sagan import SaganEditor
    from editing.selection import Validator, summarise
    from editing.train import train_editor

    cfg, _ = run
    validator = Validator.for_run(cfg, QUIET)
    sagan = SaganEditor.load(train_editor(cfg, "eyeglasses", device="cpu", progress=QUIET))
    scores = validator.score(sagan, "eyeglasses")
    expected = evaluate_editor(sagan, "eyeglasses", validator.faces("eyeglasses"), validator.judge)["mask"]["mass_inside_region"]
    assert scores["mask_mass_inside"] == pytest.approx(expected, rel=1e-4)
    assert summarise({"eyeglasses": scores})["mask_mass_inside"] == scores["mask_mass_inside"]
    assert summarise({"eyeglasses": scores, "smiling": {"added": 1.0, "removed": 1.0}})["mask_mass_inside"] is None


def test_the_mask_tier_puts_checkpoints_meeting_both_targets_first():
    from editing.selection import criterion, rank

    def summary(weaker, mask, outside=0.001, ratio=1.0):
        return {"weaker_direction": weaker, "outside_change": outside, "counterfactual_ratio": ratio, "mask_mass_inside": mask}

    strong_but_spread, both_met, no_mask = summary(0.99, 0.70), summary(0.91, 0.81), summary(0.95, None)
    assert rank(strong_but_spread) > rank(both_met)  # without a mask target, the mask plays no part
    assert rank(both_met, 0.8) > rank(strong_but_spread, 0.8) > rank(no_mask, 0.8)
    assert rank(summary(0.89, 0.95), 0.8) < rank(summary(0.90, 0.80), 0.8)  # the success target is part of the tier
    assert rank(summary(1.0, 0.9, outside=0.03), 0.8) < rank(summary(0.5, 0.1), 0.8)  # preservation still comes first
    assert "0.80" in criterion(0.8) and criterion(None).startswith("change outside")


def test_balanced_faces_take_half_from_each_side_and_fill_from_the_other():
    from editing.originals import Originals

    attrs = torch.zeros(10, 40, dtype=torch.int8)
    from pipeline.attributes import index_of

    attrs[[1, 7], index_of("eyeglasses")] = 1  # 2 of 10 faces have glasses
    faces = Originals(images=torch.zeros(10, 3, 4, 4, dtype=torch.uint8), attributes=attrs, identities=torch.arange(10),
                      regions=None, sample_ids=[f"{i}.jpg/original" for i in range(10)])
    assert faces.balanced("eyeglasses", 6).sample_ids == ["0.jpg/original", "1.jpg/original", "2.jpg/original", "3.jpg/original",
                                                          "4.jpg/original", "7.jpg/original"]  # both with glasses, 4 without
    assert faces.balanced("eyeglasses", 2).identities.tolist() == [0, 1]  # one each
    assert len(faces.balanced("eyeglasses", 50).images) == 10  # all there are


def test_training_keeps_the_best_validated_checkpoint_and_writes_the_curve(run):
    from editing.gan import WEIGHTS
    from editing.selection import rank
    from editing.train import train_editor
    from pipeline.layout import RunLayout

    cfg, _ = run
    out = train_editor(cfg, "eyeglasses", device="cpu", progress=QUIET)
    meta = json.loads((out / "editor.json").read_text())
    curve = json.loads((out / "selection.json").read_text())["curve"]
    assert [c["step"] for c in curve] == [2, 4, 6]
    best = max(curve, key=rank)
    assert meta["selection"]["best_step"] == best["step"] and meta["selection"]["best"] == {k: v for k, v in best.items() if k != "step"}
    assert meta["selection"]["criterion"].startswith("change outside the true region")
    chosen = torch.load(out / WEIGHTS, weights_only=True)["generator"]
    kept = torch.load(out / "selection" / "best" / WEIGHTS, weights_only=True)["generator"]
    assert all(torch.equal(chosen[k], kept[k]) for k in chosen)
    # another selection setting is another editor: not reused
    other = cfg.model_copy(update={"editor": cfg.editor.model_copy(update={"select_every": 3})})
    with pytest.raises(ValueError, match="was trained with"):
        train_editor(other, "eyeglasses", device="cpu", progress=QUIET)
    assert RunLayout(cfg).editor_dir("eyeglasses") == out


def test_patience_stops_training_after_scorings_without_improvement(run, tmp_path):
    from editing.gan import CHECKPOINT
    from editing.sagan import SaganTrainer
    from pipeline.layout import RunLayout

    cfg, _ = run

    class Worsening:  # each scoring worse than the last: the first checkpoint stays the best
        calls = 0

        def score_all(self, editor, attributes):
            Worsening.calls += 1
            return {"attributes": {}, "weaker_direction": 1.0 / Worsening.calls, "outside_change": 0.0, "counterfactual_ratio": 0.5}

    editor_cfg = cfg.editor.model_copy(update={"iterations": 8, "patience": 1})
    trainer = SaganTrainer(attribute="eyeglasses", image_size=32, out_dir=tmp_path / "e", config=editor_cfg)
    out = trainer.fit([RunLayout(cfg).originals], progress=QUIET, validator=Worsening())
    meta = json.loads((out / "editor.json").read_text())
    assert meta["selection"]["best_step"] == 2 and meta["selection"]["stopped_early_at"] == 4
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 4 and Worsening.calls == 2


def test_warmup_schedules_cls_on_edits():
    from editing.sagan import scheduled
    from pipeline.config import SaganParams

    s = SaganParams(cls_on_edits=1.0, cls_on_edits_warmup=10)
    assert scheduled(s, 0).cls_on_edits == 0 and scheduled(s, 10).cls_on_edits == 0
    assert scheduled(s, 15).cls_on_edits == pytest.approx(0.5) and scheduled(s, 25).cls_on_edits == 1.0
    plain = SaganParams(cls_on_edits=1.0)
    assert scheduled(plain, 0) is plain


def test_quality_reports_the_chosen_checkpoint_against_the_targets_and_refuses_a_stale_evaluation(run, tmp_path):
    import shutil

    from click.testing import CliRunner

    from editing.evaluate import evaluate_stage
    from editing.quality import TARGETS, quality_entry
    from editing.train import train_editor
    from flows.cli import main

    cfg, _ = run
    out = train_editor(cfg, "eyeglasses", device="cpu", progress=QUIET)
    evaluation = evaluate_stage(cfg, "eyeglasses", progress=QUIET)
    target = tmp_path / "editor_quality.json"
    result = CliRunner().invoke(main, ["editors", "quality", "--profile", "tiny", "--set", f"output_dir={cfg.output_dir}",
                                       "--set", "data.valid_identities=4", "--set", "editor.iterations=6",
                                       "--set", "editor.select_every=2", "--set", "editor.valid_images=64",
                                       "--attribute", "eyeglasses", "--out", str(target)])
    assert result.exit_code == 0, result.output
    entry = json.loads(target.read_text())["eyeglasses"]
    meta = json.loads((out / "editor.json").read_text())
    assert entry["added"] == evaluation["added"]["success_rate"] and entry["removed"] == evaluation["removed"]["success_rate"]
    assert entry["outside_change"] == evaluation["preservation"]["mean_abs_change_outside_region"]
    assert entry["mask_mass_inside"] == evaluation["mask"]["mass_inside_region"]
    assert entry["counterfactual_error_ratio"] == evaluation["counterfactual_error"]["ratio_inside"]
    truth = evaluation["counterfactual_error"]
    assert "added" in entry["counterfactual_error_ratio_by_direction"]  # the tiny test faces may lack a direction
    assert entry["counterfactual_error_ratio_by_direction"] == {d: truth[d]["ratio_inside"] for d in ("added", "removed") if d in truth}
    assert entry["iterations"] == meta["selection"]["best_step"]
    assert entry["checkpoint"].startswith(f"iteration {meta['selection']['best_step']} of 6") and "validation faces" in entry["checkpoint"]
    assert set(entry["targets_met"]) == set(TARGETS)
    assert entry["targets_met"]["outside_change"] == (entry["outside_change"] <= 0.02)
    assert "| eyeglasses |" in result.output
    # an evaluation of another checkpoint than the editor holds is refused
    stale = tmp_path / "stale"
    shutil.copytree(out, stale)
    meta["checkpoint_id"] = "0" * 16
    (stale / "editor.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="run faceaug editors evaluate again"):
        quality_entry(stale)
    (stale / "evaluation.json").unlink()
    with pytest.raises(FileNotFoundError, match="run faceaug editors evaluate first"):
        quality_entry(stale)


def _validated_editor(run, attribute, *, weaker, outside, ratio, step=250, width=16, faces=(200, 200), mask=None):
    import json

    d = run / "editors" / f"sagan-{attribute}"
    d.mkdir(parents=True)
    best = {"attributes": {attribute: {"added": 1.0, "removed": weaker, "faces": {"added": faces[0], "removed": faces[1]},
                                       "outside_change": outside, "counterfactual_ratio": ratio}},
            "weaker_direction": weaker, "outside_change": outside, "counterfactual_ratio": ratio}
    if mask is not None:
        best |= {"mask_mass_inside": mask}
    (d / "selection.json").write_text(json.dumps({"criterion": "c", "best_step": step, "best": best, "curve": [best]}))
    (d / "editor.json").write_text(json.dumps({"attribute": attribute, "iterations": 1500, "arch": {"conv_dim": width}}))
    (d / "editor.pt").write_bytes(b"weights of " + str(run).encode())


def test_choose_editor_script_ranks_runs_by_the_validation_criterion_and_copies_the_winners(tmp_path, capsys):
    """scripts/choose_editor.py (docs/editors.md): across runs, the same criterion that picks a run's checkpoint picks
    the run: preservation first, then the weaker direction, then the error to the truth; test figures are never read."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("choose_editor", Path(__file__).parents[2] / "scripts" / "choose_editor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _validated_editor(a, "eyeglasses", weaker=0.81, outside=0.005, ratio=1.05)
    _validated_editor(a, "smiling", weaker=0.97, outside=0.001, ratio=1.00)
    (a / "judge").mkdir()
    _validated_editor(b, "eyeglasses", weaker=0.99, outside=0.03, ratio=0.9, width=32)   # best success, but too much change outside
    _validated_editor(b, "smiling", weaker=0.97, outside=0.001, ratio=0.95, step=750)   # tie on success: smaller error wins
    _validated_editor(c, "eyeglasses", weaker=0.93, outside=0.007, ratio=1.2, step=1000)
    chosen = module.choose(module.candidates([a, b, c]))
    assert (chosen["eyeglasses"]["run"], chosen["eyeglasses"]["step"]) == (str(c), 1000)
    assert (chosen["smiling"]["run"], chosen["smiling"]["step"]) == (str(b), 750)

    assert module.main([str(a), str(b), str(c), "--into", str(tmp_path / "into")]) == 0
    assert "| eyeglasses | " + str(c) in capsys.readouterr().out
    assert (tmp_path / "into/editors/sagan-eyeglasses/editor.pt").read_bytes() == b"weights of " + str(c).encode()
    assert (tmp_path / "into/editors/sagan-smiling/editor.pt").read_bytes() == b"weights of " + str(b).encode()
    assert (tmp_path / "into/judge").is_dir()
    assert json.loads((tmp_path / "into/choice.json").read_text())["smiling"]["run"] == str(b)

    # validated on other faces: the figures cannot be compared
    d = tmp_path / "d"
    _validated_editor(d, "smiling", weaker=1.0, outside=0.001, ratio=0.5, faces=(100, 100))
    assert module.main([str(a), str(d)]) == 1
    assert "validated on different faces" in capsys.readouterr().err

    # with a mask target, a candidate meeting it and the success target beats a stronger one without a mask figure
    e = tmp_path / "e"
    _validated_editor(e, "eyeglasses", weaker=0.91, outside=0.002, ratio=1.3, mask=0.85)
    assert module.choose(module.candidates([a, b, c, e]))["eyeglasses"]["run"] == str(c)
    assert module.choose(module.candidates([a, b, c, e], mask_target=0.8))["eyeglasses"]["run"] == str(e)
    assert module.main([str(c), str(e), "--mask-target", "0.8"]) == 0
    assert "| 0.85 | **chosen** |" in capsys.readouterr().out
