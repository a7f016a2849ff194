"""Option handling that needs no engine: durations, presets, stop rules, the text chart."""

import re

import pytest

from charrnn.config import DEFAULTS, PRESETS
from charrnn.display import chart
from charrnn.errors import UsageError
from charrnn.runs import build_configs, parse_duration
from charrnn.train import MAX_EPOCHS, StopRule


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("10m5", 605),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5m", "0", "m"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(text)


def test_defaults_without_preset():
    model, train, explicit = build_configs(None, {"hidden": None, "lr": None})
    assert model["cell"] == DEFAULTS["cell"] and model["hidden"] == DEFAULTS["hidden"]
    assert train.lr == DEFAULTS["lr"] and explicit == set()


def test_default_optimizer_is_adamw_with_weight_decay():
    _, train, _ = build_configs(None, {})
    assert (train.optimizer, train.weight_decay) == ("adamw", DEFAULTS["weight_decay"])
    assert train.weight_decay > 0


@pytest.mark.parametrize("preset, optimizer", [(None, "adam"), (None, "sgd"), ("char-rnn", None)])
def test_weight_decay_is_dropped_for_optimizers_without_it(preset, optimizer):
    """Another optimizer, by flag or preset, stores no weight decay it would not apply."""
    _, train, _ = build_configs(preset, {"optimizer": optimizer})
    assert train.optimizer != "adamw" and train.weight_decay == 0.0


def test_weight_decay_given_for_another_optimizer_is_a_usage_error():
    with pytest.raises(UsageError, match="adamw's decoupled weight decay; adam has none"):
        build_configs(None, {"optimizer": "adam", "weight_decay": 0.05})
    _, train, _ = build_configs(None, {"optimizer": "adam", "weight_decay": 0.0})
    assert train.weight_decay == 0.0


def test_min_char_rnn_preset():
    model, train, _ = build_configs("min-char-rnn", {})
    assert (model["cell"], model["hidden"], model["layers"]) == ("rnn", 100, 1)
    assert (train.batch, train.seq, train.optimizer, train.lr) == (1, 25, "adagrad", 0.1)
    assert (train.clip, train.clip_mode) == (5.0, "value")


def test_char_rnn_preset_and_explicit_flag_wins():
    model, train, explicit = build_configs("char-rnn", {"hidden": 64, "lr": None})
    assert model["hidden"] == 64 and model["layers"] == 2 and model["cell"] == "lstm"
    assert train.optimizer == "rmsprop" and train.schedule == "step"
    assert (train.decay_rate, train.decay_after, train.batch, train.seq) == (0.97, 10, 50, 50)
    assert explicit == {"hidden"}
    assert PRESETS["char-rnn"]["hidden"] == 128  # the preset itself is not changed


@pytest.mark.parametrize(
    "options, message",
    [
        ({"hidden": 0}, "hidden must be at least 1"),
        ({"layers": -1}, "layers must be at least 1"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"cell": "transformer"}, "unknown model"),
        ({"optimizer": "lion"}, "unknown optimizer"),
        ({"batch": 0}, "batch and seq"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"clip": -1.0}, "clip must be"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        build_configs(None, options)


def test_unknown_preset():
    with pytest.raises(UsageError, match="unknown preset"):
        build_configs("gpt", {})


def test_stop_rule_description():
    assert StopRule().automatic and str(MAX_EPOCHS) in StopRule().describe()
    rule = StopRule(steps=10, seconds=600)
    assert not rule.automatic and rule.describe() == "for 10 steps or 10:00"


def test_chart_places_extremes_on_top_and_bottom_rows():
    lines = chart({"train": [3.0, 2.0, 1.0], "val": [None, 2.5, 1.5]}, width=3, height=5)
    grid = [line.split("│", 1)[1] for line in lines[:5]]
    assert grid[0][0] == "t"  # 3.0 is the maximum: top row, first column
    assert grid[4][2] == "t"  # 1.0 is the minimum: bottom row, last column
    assert lines[0].startswith("3.000") and lines[4].startswith("1.000")
    assert "v = val" in lines[-1]


def test_dashboard_charts_every_step_and_marks_evaluations():
    """The live view's chart gets one point per step (merged in pairs past HISTORY) with the
    val loss at the step of its evaluation, and renders both."""
    import io

    from rich.console import Console

    from charrnn import display
    from charrnn.train import Event

    dash = display.Dashboard("run")
    dash(Event("start", 0, {"total_steps": 10_000}))
    n = display.HISTORY + 2
    for step in range(1, n + 1):
        dash(Event("step", step, {"loss": 4.0 - step / n, "lr": 1e-3, "epoch": 0.1}))
        if step % 1000 == 0:
            dash(Event("eval", step, {"train_loss": 3.0, "val_loss": 3.5, "best_val_loss": 3.5}))
    assert len(dash.train_hist) == len(dash.val_hist) == n // 2 + 1
    assert sum(v is not None for v in dash.val_hist) == 4  # evals at 1000..4000, none lost
    assert dash.train_hist[0] == pytest.approx(4.0 - 1.5 / n)  # the mean of steps 1 and 2
    out = io.StringIO()
    Console(file=out, width=100).print(dash.render())
    text = out.getvalue()
    assert "t = train  v = val" in text and "3.500" in text  # val loss tops the y axis


def test_dashboard_says_why_the_first_step_is_slow(monkeypatch):
    import io

    from rich.console import Console

    from charrnn import display
    from charrnn.train import Event

    def shown(dash) -> str:
        out = io.StringIO()
        Console(file=out, width=120).print(dash.render())
        return out.getvalue()

    clock = [100.0]
    monkeypatch.setattr(display.time, "perf_counter", lambda: clock[0])
    dash = display.Dashboard("run")
    dash(Event("start", 0, {"total_steps": 100}))
    assert "compiling" not in shown(dash)  # a warm start takes well under a second
    clock[0] += 5.0
    text = shown(dash)
    assert display.COMPILING[:40] in text
    assert re.search(r"chars/s\s+—", text)  # no rate yet, not a rate of 0
    dash(Event("step", 1, {"loss": 4.0, "lr": 1e-3, "epoch": 0.1, "chars_per_second": 900.0}))
    text = shown(dash)
    assert "compiling" not in text and "900" in text


def test_a_rate_is_shown_only_once_there_is_one():
    from charrnn.display import rate

    assert [rate(x) for x in (None, 0.0, float("nan"), 12345.6)] == ["—", "—", "—", "12,346"]
