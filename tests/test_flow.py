"""The `augment-and-verify` Prefect flow on the tiny profile, end to end, under a temporary Prefect server."""

import json

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_flow_runs_end_to_end_and_reports(harness, tmp_path, monkeypatch):
    from flows.augment_and_verify import augment_and_verify

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    report = augment_and_verify(profile="tiny", overrides={"output_dir": str(run), "verifier.threads": 1})
    assert report.endswith("report.html")
    data = json.loads((run / "report.json").read_text())
    html = (run / "report.html").read_text()
    assert set(data["results"]["arms"]) == {"baseline", "aug-eyeglasses"}
    for row in data["table"]:
        assert row["value"] in html
    # re-running the same config reuses every finished stage (files, not only Prefect's database)
    mtime = (run / "verifiers" / "baseline" / "seed-0" / "verifier.pt").stat().st_mtime
    augment_and_verify(profile="tiny", overrides={"output_dir": str(run), "verifier.threads": 1})
    assert (run / "verifiers" / "baseline" / "seed-0" / "verifier.pt").stat().st_mtime == mtime


def test_bad_override_fails_before_any_task(harness, tmp_path):
    from flows.augment_and_verify import augment_and_verify

    with pytest.raises(ValueError, match="data.imagesize"):
        augment_and_verify(profile="tiny", overrides={"data.imagesize": 3, "output_dir": str(tmp_path / "r")})
    assert not (tmp_path / "r").exists()
