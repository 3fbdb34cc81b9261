"""Progress lines: recognised, relayed from worker files as they are written, shown as bars on a terminal."""

import io

from flows.progress import Follower, ProgressFile, TerminalProgress, counted


def test_counted_reads_task_and_count_of_the_stages_progress_lines():
    assert counted("sagan/eyeglasses: it 50/1200 (2.61 it/s, eta 7.4 min) D adv -0.04") == ("sagan/eyeglasses", 50, 1200)
    assert counted("baseline/seed-0: verifier[seed-0]: step 4/6 loss 17.99") == ("baseline/seed-0", 4, 6)
    assert counted("  augment smiling: shard 9/14 (2048 of 28479 source images)") == ("augment smiling", 9, 14)
    assert counted("  lfw: 32/88 images (72 img/s)") == ("lfw", 32, 88)
    for plain in ("== train editors", "sagan/eyeglasses: validation at it 200: weaker direction 0.5",
                  "eyeglasses: data/runs/evidence/editors/identity-eyeglasses", "x: 3/0 nothing"):
        assert counted(plain) is None, plain


def test_follower_forwards_complete_lines_once_and_only_new_ones(tmp_path):
    old = tmp_path / "a.log"
    old.write_text("from an earlier attempt\n")
    got = []
    follower = Follower([old, tmp_path / "b.log"], got.append)
    write_a, write_b = ProgressFile(old), ProgressFile(tmp_path / "b.log")
    write_a("a: it 1/3")
    follower.poll()
    with (tmp_path / "b.log").open("a") as f:
        f.write("b: half a li")  # still being written: waits
    follower.poll()
    assert got == ["a: it 1/3"]
    with (tmp_path / "b.log").open("a") as f:
        f.write("ne\n")
    write_a("a: it 2/3")
    follower.poll()
    follower.poll()
    assert got == ["a: it 1/3", "a: it 2/3", "b: half a line"]
    write_b("b: multi\nline message")  # one message, one line
    follower.poll()
    assert got[-1] == "b: multi line message"


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_progress_draws_bars_on_a_tty_and_plain_lines_elsewhere():
    plain = io.StringIO()
    show = TerminalProgress(plain)
    show("== train editors")
    show("sagan/eyeglasses: it 50/100 (2 it/s)")
    assert plain.getvalue() == "== train editors\nsagan/eyeglasses: it 50/100 (2 it/s)\n"

    tty = _Tty()
    show = TerminalProgress(tty)
    show("sagan/eyeglasses: it 50/100 (2 it/s)")
    show("sagan/smiling: it 10/100 (2 it/s)")
    assert set(show.bars) == {"sagan/eyeglasses", "sagan/smiling"} and show.bars["sagan/eyeglasses"].n == 50
    show("== a stage message")
    show("sagan/eyeglasses: it 100/100 (2 it/s)")  # finished: its bar is closed and left on screen
    assert set(show.bars) == {"sagan/smiling"}
    out = tty.getvalue()
    assert "== a stage message" in out and "sagan/eyeglasses 100/100" in out and "|" in out
    show.close()
