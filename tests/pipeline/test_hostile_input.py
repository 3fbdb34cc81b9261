"""Hostile input ends in a clear error naming the file (or key), quickly, never a hang or a raw traceback.

Cases of the issue "Hostile input and faults": a FIFO, socket, dangling symlink or symlink loop where an
image should be (1), a decompression bomb (3), config values that must be refused (6), and a small but
sound CelebA tree whose check must pass (7). Every test here would hang, crash or pass bad input before
the fix; the timeouts turn a hang into a failure.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import zlib

import pytest
from click.testing import CliRunner

from _trees import make_celeba_tree, make_lfw_tree, pairs_text
from flows.cli import main
from pipeline.celeba import IMAGE_DIR
from pipeline.config import ConfigError, load_config, parse_overrides
from pipeline.datacheck import check_celeba
from pipeline.images import MAX_PIXELS, BadImageError, file_problem, image_size, load_rgb
from pipeline.ingest import prepare_data

IDS = {1: 3, 2: 3, 3: 3, 4: 3}  # 12 images, 000001.jpg ... 000012.jpg
QUIET = lambda *_: None  # noqa: E731


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds (almost) none: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def make_hostile(image_dir) -> dict[str, str]:
    """Replace five images with hostile entries; -> file name -> the reason it must be reported with."""
    def replace(name: str) -> str:
        path = image_dir / name
        path.unlink()
        return str(path)

    os.mkfifo(replace("000002.jpg"))
    os.symlink(str(image_dir / "nowhere.jpg"), replace("000003.jpg"))
    loop = replace("000004.jpg")
    os.symlink(loop, loop)
    with open(replace("000005.jpg"), "wb") as f:
        f.write(png_header(30000, 30000))  # beyond PIL's own limit: Image.open raises DecompressionBombError
    with open(replace("000006.jpg"), "wb") as f:
        f.write(png_header(9000, 9000))  # below PIL's limit, above ours: refused before decoding
    return {"000002.jpg": "FIFO", "000003.jpg": "dangling symlink", "000004.jpg": "symlink loop",
            "000005.jpg": "decompression bomb", "000006.jpg": "decompression bomb"}


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "celeba"
    make_celeba_tree(root, IDS, size=(40, 48))
    return root, make_hostile(root / IMAGE_DIR)


# ----------------------------------------------------------------------------- 1 and 3: single files
@pytest.mark.timeout(20)
def test_each_hostile_file_is_a_bad_image_naming_it(hostile, tmp_path):
    root, expected = hostile
    for name, reason in expected.items():
        path = root / IMAGE_DIR / name
        with pytest.raises(BadImageError) as info:
            load_rgb(path)
        assert info.value.path == str(path) and reason in info.value.reason, info.value
        with pytest.raises(BadImageError, match=reason):
            image_size(path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock.jpg"))
    try:
        assert "socket" in file_problem(tmp_path / "sock.jpg")
        with pytest.raises(BadImageError, match="socket"):
            load_rgb(tmp_path / "sock.jpg")
    finally:
        server.close()
    with pytest.raises(BadImageError, match="character device"):
        load_rgb("/dev/zero")  # would otherwise be read forever
    assert f"{MAX_PIXELS:,}" in str(pytest.raises(BadImageError, load_rgb, root / IMAGE_DIR / "000006.jpg").value)


# ----------------------------------------------------------------------------- 1 and 3: data check
@pytest.mark.timeout(60)
@pytest.mark.parametrize("decode", [False, True])
def test_data_check_accounts_for_every_image(hostile, decode):
    root, expected = hostile
    summary = check_celeba(root, decode=decode, workers=2, test_identities=1)
    problems = {p["file"].removeprefix(f"{IMAGE_DIR}/"): p["message"] for p in summary["problems"]}
    assert set(problems) == set(expected)
    for name, reason in expected.items():
        assert reason in problems[name]
    if decode:  # every listed image decoded or reported: the count adds up
        assert summary["images_listed"] == 12
        assert summary["images_decoded"] + summary["images_bad"] + summary["images_absent"] == 12
        assert summary["images_decoded"] == 7 and summary["images_bad"] == 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize("decode", [[], ["--decode"]])
def test_cli_data_check_json_reports_the_bomb(tmp_path, decode):
    root = tmp_path / "celeba"
    make_celeba_tree(root, IDS, size=(40, 48))
    (root / IMAGE_DIR / "000005.jpg").write_bytes(png_header(30000, 30000))
    res = CliRunner().invoke(main, ["data", "check", "--celeba", str(root), "--json", "--test-identities", "1", *decode])
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)  # the whole summary on stdout, not a traceback
    [problem] = summary["celeba"]["problems"]
    assert problem["file"] == f"{IMAGE_DIR}/000005.jpg" and "decompression bomb" in problem["message"]
    # and it is counted, not only listed: decoded + bad (+ absent) add up, or the sampled headers name it
    counted = summary["celeba"]["images_bad"] if decode else summary["celeba"]["image_headers_bad"]
    assert counted == 1


# ----------------------------------------------------------------------------- 1 and 3: data prepare
def _lfw(tmp_path):
    root = tmp_path / "lfw"
    make_lfw_tree(root, {"Ann_A": 2, "Bob_B": 2}, size=(40, 40),
                  pairs=pairs_text([([("Ann_A", 1, 2)], [("Ann_A", 1, "Bob_B", 1)])]))
    return root


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["error", "skip"])
def test_prepare_applies_the_bad_image_policy_to_hostile_files(hostile, tmp_path, monkeypatch, policy):
    root, expected = hostile
    monkeypatch.chdir(tmp_path)
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "run"), "workers": 2, "data": {
        "source": "celeba", "celeba_dir": str(root), "lfw_dir": str(_lfw(tmp_path)), "on_bad_image": policy,
        "test_identities": 1, "shard_rows": 16}})
    if policy == "error":
        with pytest.raises(BadImageError) as info:
            prepare_data(cfg, progress=QUIET)
        name = os.path.basename(info.value.path)
        assert name in expected and expected[name] in info.value.reason
        return
    summary = prepare_data(cfg, progress=QUIET)
    skipped = {os.path.basename(f["path"]): f["reason"] for f in summary["originals"]["images"]["skipped_files"]}
    assert set(skipped) == set(expected) and summary["skipped_images"] == 5
    assert all(reason in skipped[name] for name, reason in expected.items())
    assert summary["originals"]["rows"] == 12 - 5


# ----------------------------------------------------------------------------- 7: a small sound tree
def test_small_sound_tree_passes_its_check(tmp_path):
    root = tmp_path / "celeba"
    make_celeba_tree(root, IDS, size=(40, 48))
    summary = check_celeba(root)  # the default test_identities (2000) does not fit 4 identities
    assert summary["problems"] == []
    reason = summary["splits"]["paper"]["not_applicable"]
    assert "2000" in reason and "--test-identities" in reason
    res = CliRunner().invoke(main, ["data", "check", "--celeba", str(root)])
    assert res.exit_code == 0, res.output
    assert "paper split" in res.output and "not applicable" in res.output and "no problems found" in res.output


# ----------------------------------------------------------------------------- 6: config values refused
@pytest.mark.parametrize("override, key, why", [
    ("verifier.lr=.inf", "verifier.lr", "finite"),
    ("editor.betas=[0.5, .nan]", "editor.betas.1", "finite"),
    ("verifier.seeds=[]", "verifier.seeds", "at least one seed"),
    ("verifier.seeds=[0,0]", "verifier.seeds", "listed twice"),
    ("verifier.steps=true", "verifier.steps", "not a boolean"),
    ("verifier.seeds=[true]", "verifier.seeds", "not a boolean"),
    ("data.synthetic.lfw_pairs_per_fold=false", "data.synthetic.lfw_pairs_per_fold", "not a boolean"),
    ("output_dir=", "output_dir", "must not be empty"),
    ("data.celeba_dir=", "data.celeba_dir", "must not be empty"),
    ("x=[1", "x", "not valid YAML"),
    ("seed=!!python/object/apply:os.system [echo pwned]", "seed", "YAML tag"),
    ("editor.params={a: &x [1], b: [*x, *x]}", "editor.params", "alias"),
    ("seed=2001-02-30", "seed", "cannot be read"),
])
def test_bad_config_values_are_refused_naming_the_key(override, key, why):
    with pytest.raises(ConfigError, match=f"'{key}'") as info:
        load_config("tiny", [override])
    assert why in str(info.value)


def test_valid_values_still_accepted():
    cfg = load_config("tiny", ["verifier.seeds=[0, 1]", "data.lfw_attributes=null", "editor.lr=1e-4", "seed=3",
                               "data.synthetic.fixed_count=true", "evaluation.far_levels=[0.001]"])
    assert cfg.verifier.seeds == (0, 1) and cfg.seed == 3 and cfg.data.synthetic.fixed_count is True
    assert parse_overrides(["a.b=1", "c="]) == {"a": {"b": 1}, "c": ""}


def test_cli_names_the_key_of_a_malformed_override():
    res = CliRunner().invoke(main, ["config", "show", "--profile", "tiny", "--set", "x=[1"])
    assert res.exit_code == 2 and "override 'x'" in res.output and "Traceback" not in res.output
