"""The delayed progress bar (charrnn/progress.py): nothing for quick work or off a terminal; a bar
on stderr once the work has taken DELAY seconds."""

from charrnn import progress


def test_no_bar_off_a_terminal_or_before_the_delay(monkeypatch):
    with progress.DelayedBar("scoring", 100, enabled=False) as bar:
        bar(50)
        assert bar._timer is None and bar._bar is None
    monkeypatch.setattr(progress, "DELAY", 3600.0)
    with progress.DelayedBar("scoring", 100, enabled=True) as bar:
        bar(50)  # quick work ends long before the bar would appear
        assert bar._bar is None
    bar._timer.join()  # cancelled: it never shows a bar
    assert bar._closed and bar._bar is None


def test_the_bar_appears_after_the_delay_with_the_count_so_far(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    for total in (100, None):  # a known end, or a count (a pipe)
        with progress.DelayedBar("scoring", total, "bytes", enabled=True) as bar:
            bar(40)
            bar._timer.join()  # the timer thread has shown it
            assert bar._bar is not None
            task = bar._bar.tasks[0]
            assert task.completed == 40 and task.total == total
            bar(70)
            assert bar._bar.tasks[0].completed == 70
        assert bar._bar is None  # stopped on exit


def test_what_is_written_to_stdout_meanwhile_stays_on_stdout(monkeypatch, capsys):
    """The bar lives on stderr; rows printed while it shows go to stdout, not through it
    (Rich's default would send them to the bar's console: rows lost from a redirected file)."""
    import sys

    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with progress.DelayedBar("scoring", 10, enabled=True) as bar:
        bar._timer.join()
        assert bar._bar is not None and bar._bar.console.is_terminal
        print("row 1")
        sys.stdout.write("row 2\n")
    out, err = capsys.readouterr()
    assert out == "row 1\nrow 2\n" and "row" not in err
    assert "scoring" in err and "/10 chars" in err  # the bar itself was drawn, on stderr
