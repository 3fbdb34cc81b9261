"""The prepare stage and the data CLI on the synthetic benchmark: render, check, ingest, resume, bad input."""

import json
import shutil

import pytest
from click.testing import CliRunner

from flows.cli import main
from pipeline.config import load_config
from pipeline.images import BadImageError
from pipeline.ingest import prepare_data
from pipeline.layout import RunLayout
from pipeline.shards import ShardStore

QUIET = lambda *_: None  # noqa: E731


def test_prepare_ingests_every_image_once(tiny_config):
    summary = prepare_data(tiny_config, progress=QUIET)
    run = tiny_config.output_dir
    originals = ShardStore(str(run / "shards" / "originals"))
    assert originals.verify().ok and ShardStore(str(run / "shards" / "lfw")).verify().ok
    n = summary["train"]["images"] + summary["test"]["images"] + summary["valid"]["images"]
    assert originals.num_rows() == n == summary["originals"]["rows"]
    table = originals.read_table(columns=["sample_id", "split", "identity", "regions", "height"])
    assert len(set(table.column("sample_id").to_pylist())) == n
    train_ids = {i for i, s in zip(table.column("identity").to_pylist(), table.column("split").to_pylist()) if s == "train"}
    test_ids = {i for i, s in zip(table.column("identity").to_pylist(), table.column("split").to_pylist()) if s == "test"}
    assert train_ids and test_ids and not train_ids & test_ids
    assert all(r is not None for r in table.column("regions").to_pylist())  # ground truth travels with the images
    assert set(table.column("height").to_pylist()) == {tiny_config.data.image_size}
    assert json.loads((run / "config.json").read_text())["profile"] == "tiny"
    assert json.loads((run / "data_summary.json").read_text())["skipped_images"] == 0


def test_interrupted_prepare_resumes_without_duplicates_or_losses(tiny_config):
    prepare_data(tiny_config, progress=QUIET)
    store_dir = tiny_config.output_dir / "shards" / "originals"
    rows_before = ShardStore(str(store_dir)).read_table(columns=["sample_id"]).column("sample_id").to_pylist()
    # A kill between the shard's rename and its manifest entry: the file is there, the entry is not.
    (store_dir / "_manifest" / "part-00001.json").unlink()
    (store_dir / "_tmp").mkdir(exist_ok=True)
    (store_dir / "_tmp" / "part-00002.deadbeef.parquet").write_bytes(b"half a shard")
    assert not ShardStore(str(store_dir)).verify().ok
    summary = prepare_data(tiny_config, progress=QUIET)
    assert summary["originals"]["shards_reused"] == summary["originals"]["shards"] - 1
    store = ShardStore(str(store_dir))
    assert store.verify().ok
    assert sorted(store.read_table(columns=["sample_id"]).column("sample_id").to_pylist()) == sorted(rows_before)


def _real_copy(cfg, tmp_path):
    """The rendered synthetic trees, copied and used as a 'real' CelebA/LFW source."""
    prepare_data(cfg, progress=QUIET)
    src = RunLayout(cfg).synthetic
    shutil.copytree(src / "celeba", tmp_path / "celeba")
    shutil.copytree(src / "lfw", tmp_path / "lfw")
    return tmp_path / "celeba", tmp_path / "lfw"


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_corrupt_image_is_reported_or_skipped_and_counted(tiny_config, tmp_path, policy):
    celeba, lfw = _real_copy(tiny_config, tmp_path)
    victim = sorted((celeba / "img_align_celeba").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "run2"), "data": {
        "source": "celeba", "celeba_dir": str(celeba), "lfw_dir": str(lfw), "on_bad_image": policy, "test_identities": 6}})
    if policy == "error":
        with pytest.raises(BadImageError, match=victim.name):
            prepare_data(cfg, progress=QUIET)
        return
    summary = prepare_data(cfg, progress=QUIET)
    assert summary["skipped_images"] == 1
    assert summary["originals"]["images"]["skipped_files"][0]["path"].endswith(victim.name)
    assert summary["originals"]["rows"] == summary["originals"]["items"] - 1


def test_cli_synth_and_data_check(tmp_path):
    runner = CliRunner()
    out = tmp_path / "bench"
    res = runner.invoke(main, ["synth", "--out", str(out), "--identities", "30", "--images-per-identity", "5", "--size", "32", "--lfw-identities", "40"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["data", "check", "--celeba", str(out / "celeba"), "--lfw", str(out / "lfw"), "--json", "--test-identities", "6"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["celeba"]["problems"] == [] and summary["lfw"]["problems"] == []
    assert summary["celeba"]["identities"] == 30
    assert summary["celeba"]["splits"]["paper"]["test"]["identities"] == 6
    assert abs(sum(summary["celeba"]["attribute_prevalence"].values())) > 0

    # A truncated attribute file: the count on line 1 no longer matches, and the check says where.
    attr = out / "celeba" / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(lines[:-5]) + "\n")
    res = runner.invoke(main, ["data", "check", "--celeba", str(out / "celeba")])
    assert res.exit_code == 1
    assert "list_attr_celeba.txt" in res.output and "truncated" in res.output

    # Refuses to overwrite an existing tree without --overwrite.
    res = runner.invoke(main, ["synth", "--out", str(out), "--identities", "30", "--size", "32"])
    assert res.exit_code != 0 and str(out) in res.output


def test_cli_reports_config_errors_with_the_key():
    res = CliRunner().invoke(main, ["config", "show", "--profile", "tiny", "--set", "data.imagesize=3"])
    assert res.exit_code == 2 and "data.imagesize" in res.output


def test_cli_shards_verify_exit_code(tiny_config):
    prepare_data(tiny_config, progress=QUIET)
    shards = tiny_config.output_dir / "shards"
    assert CliRunner().invoke(main, ["shards", "verify", str(shards)]).exit_code == 0
    victim = sorted((shards / "originals").glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    res = CliRunner().invoke(main, ["shards", "verify", str(shards)])
    assert res.exit_code == 1 and victim.name in res.output


def test_changed_config_does_not_resume_into_stale_shards(tiny_config):
    from pipeline.shards import ShardError

    prepare_data(tiny_config, progress=QUIET)
    bigger = load_config("tiny", {"output_dir": str(tiny_config.output_dir), "workers": 2, "data": {"image_size": 40}})
    with pytest.raises(ShardError, match='"image_size": 32.*"image_size": 40'):
        prepare_data(bigger, progress=QUIET)
