"""The `augment-and-verify` Prefect flow on the tiny profile, end to end, under a temporary Prefect server.

The flow runs in a child Python process: Prefect's test harness leaves server threads and global
state behind, and a pytest process that later forks (DataLoader workers) must not inherit them.
"""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from prefect.testing.utilities import prefect_test_harness
    from flows.augment_and_verify import augment_and_verify

    run = sys.argv[1]
    overrides = {"output_dir": run, "verifier.threads": 1}
    with prefect_test_harness(server_startup_timeout=120):
        first = augment_and_verify(profile="tiny", overrides=overrides)
        mtime = os.stat(os.path.join(run, "verifiers", "baseline", "seed-0", "verifier.pt")).st_mtime
        again = augment_and_verify(profile="tiny", overrides=overrides)
        reused = os.stat(os.path.join(run, "verifiers", "baseline", "seed-0", "verifier.pt")).st_mtime == mtime
        try:
            augment_and_verify(profile="tiny", overrides={"data.imagesize": 3, "output_dir": run + "-bad"})
            bad = "accepted"
        except ValueError as exc:
            bad = str(exc)
    print("RESULT " + json.dumps({"report": first, "again": again, "reused": reused, "bad": bad,
                                  "bad_dir_exists": os.path.exists(run + "-bad")}))
''')


def test_flow_end_to_end_reuse_and_bad_parameters(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    run = tmp_path / "run"
    assert result["report"].endswith("report.html")
    data = json.loads((run / "report.json").read_text())
    html = (run / "report.html").read_text()
    assert set(data["results"]["arms"]) == {"baseline", "aug-eyeglasses"}
    for row in data["table"]:
        assert row["value"] in html  # the HTML's numbers are report.json's
    # re-running the same config reuses every finished stage (files, not only Prefect's database)
    assert result["reused"] and result["again"] == result["report"]
    # a bad override fails with the key named, before any task (nothing is written)
    assert "data.imagesize" in result["bad"] and not result["bad_dir_exists"]
