"""Whether a metric's per-item values lie in [0, 1] is the metric's nature, declared by its
scorer (``Scorer.unbounded``, read through ``harness.metrics.in_unit_interval``), not a
property of one run's numbers: a latency under a second is no share, and a share outside
[0, 1] is a bug. ``harness.compare.continuous_interval`` chooses the interval from it."""

from __future__ import annotations

import numpy as np
import pytest

from factories import make_suite
from harness import compare
from harness.compare import OUT_OF_RANGE, continuous_interval, direction, model_view, paired_delta
from harness.errors import HarnessError
from harness.metrics import in_unit_interval, metric
from harness.runner import score_model
from harness.scorers import REGISTRY, Score, Scorer, make_scorer, plugins
from harness.stats import paired_bootstrap_diff_ci, scaled_tango_ci

HALF_CREDIT_A = [1.0, 1.0, 0.5, 1.0, 0.0, 0.5, 1.0, 1.0, 0.5, 1.0, 1.0, 0.0] * 2
HALF_CREDIT_B = [1.0, 0.5, 0.5, 1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 1.0, 0.0, 0.5] * 2


def test_every_built_in_scorer_says_which_of_its_metrics_are_shares():
    assert all(cls.unbounded is not None for cls in REGISTRY.values())
    shares = ["exact_match", "keywords", "keywords.fraction", "keywords.forbidden", "repetition",
              "repetition.seq_rep", "repetition.loop", "json_schema.lenient", "json_schema.class.fenced",
              "sql_execution.executed", "sql_logical_form.where", "token_accuracy"]
    unbounded = ["latency", "latency.ttft_s", "latency.total_s", "latency.decode_tps", "latency.prompt_tps",
                 "latency.peak_memory_gb", "latency.ttft_s.p95", "latency.peak_memory_gb.max",
                 "token_accuracy.nll", "token_accuracy.perplexity"]
    assert [m for m in shares if in_unit_interval(m) is not True] == []
    assert [m for m in unbounded if in_unit_interval(m) is not False] == []
    assert in_unit_interval("no_such_scorer.x") is None


def test_a_plugin_states_it_or_leaves_it_to_the_values(monkeypatch):
    class Stated(Scorer):
        name = "stated"
        unbounded = frozenset({"words"})

    class Silent(Scorer):
        name = "silent"

    found = {"stated": Stated, "silent": Silent}
    monkeypatch.setattr(plugins, "load_plugin", lambda name: found.get(name))
    assert in_unit_interval("stated") is True and in_unit_interval("stated.share") is True
    assert in_unit_interval("stated.words") is False
    assert in_unit_interval("silent") is None and in_unit_interval("silent.words") is None
    # nobody says: the values decide, the wider interval wherever they allow it (the default
    # that never lets more through a gate); a stated metric is decided by what it is
    sub_second = [0.21, 0.35, 0.4, 0.28]
    assert continuous_interval("mean", "silent.words", sub_second, sub_second[::-1]) == "bca_tango"
    assert continuous_interval("mean", "silent.words", [3.0, 2.0], [1.0, 2.0]) == "bca"
    assert continuous_interval("mean", "stated.words", sub_second, sub_second[::-1]) == "bca"
    assert continuous_interval("mean", "stated.share", sub_second, sub_second[::-1]) == "bca_tango"


def test_the_interval_follows_the_metric_not_its_values():
    sub_second = [0.21, 0.35, 0.4, 0.28]
    later = [0.25, 0.33, 0.47, 0.3]
    # a latency under a second was taken for a share: the bounded means' interval
    for series in ("latency", "latency.ttft_s", "latency.decode_tps", "@ttft_s", "token_accuracy.nll"):
        assert continuous_interval("mean", series, sub_second, later) == "bca", series
    assert continuous_interval("mean", "keywords.fraction", HALF_CREDIT_A, HALF_CREDIT_B) == "bca_tango"
    assert continuous_interval("p95", "latency.ttft_s", sub_second, later) == "wider"
    assert continuous_interval("p95", "keywords.fraction", HALF_CREDIT_A, HALF_CREDIT_B) == "wider"
    # a share with a value outside [0, 1]: a bug, said so, never Tango's interval for shares
    assert continuous_interval("mean", "keywords.fraction", [0.5, 1.5], [0.5, 1.0]) == "bca_out_of_range"


def _latency_model(values) -> dict:
    items = [{"id": f"i{k}", "category": None, "output": f"o{k}",
              "scores": {"latency": {"passed": None, "value": float(v), "metrics": {"total_s": float(v)}}}}
             for k, v in enumerate(values)]
    return {"fingerprint": None, "items": items,
            "metrics": {"latency": metric(float(np.mean(values)), None, None, len(values), "mean", False)}}


def test_a_sub_second_latency_slowdown_is_called_worse(monkeypatch):
    # 24 items around 0.3 s, the candidate about 10% slower on each: BCa's lower bound is above
    # 0 (worse, what `harness compare --fail-on-regression` fails on); the bounded means'
    # interval, which the values alone used to choose, widened that side past 0: no call
    rng = np.random.default_rng(8)
    a = 0.3 * np.exp(0.4 * rng.standard_normal(24))
    b = a * np.exp(rng.normal(0.1, 0.15, 24))
    assert b.max() < 1.0
    ref, cand = model_view(_latency_model(a)), model_view(_latency_model(b))
    delta = paired_delta(ref, cand, "latency")
    _, bca_low, bca_high = paired_bootstrap_diff_ci(a, b, seed=0, n_boot=2000)
    assert (delta["ci_low"], delta["ci_high"]) == pytest.approx((bca_low, bca_high), abs=1e-12)
    assert delta["method"].startswith("paired BCa bootstrap") and "Tango" not in delta["method"]
    assert direction(delta, False) == "worse" and delta["ci_low"] > 0.004
    monkeypatch.setattr(compare, "_declared_unit_interval", lambda series: None)  # decided on the values
    by_values = paired_delta(ref, cand, "latency")
    assert direction(by_values, False) == "" and by_values["ci_low"] < 0
    assert by_values["ci_high"] == pytest.approx(bca_high, abs=1e-12)  # the side a tolerance gate reads


def _share_model(values, scorer: str = "keywords", key: str = "fraction") -> dict:
    items = [{"id": f"i{k}", "category": None, "output": f"o{k}",
              "scores": {scorer: {"passed": True, "value": 1.0, "metrics": {key: float(v)}}}}
             for k, v in enumerate(values)]
    name = f"{scorer}.{key}"
    return {"fingerprint": None, "items": items,
            "metrics": {name: metric(float(np.mean(values)), None, None, len(values), "mean")}}


def test_a_half_credit_share_takes_the_wider_of_bca_and_tango():
    delta = paired_delta(model_view(_share_model(HALF_CREDIT_A)), model_view(_share_model(HALF_CREDIT_B)),
                         "keywords.fraction")
    a, b = np.array(HALF_CREDIT_A), np.array(HALF_CREDIT_B)
    _, bca_low, bca_high = paired_bootstrap_diff_ci(a, b, seed=0, n_boot=2000)
    t_low, t_high = scaled_tango_ci(b - a, len(a))
    assert delta["ci_low"] == pytest.approx(min(bca_low, t_low), abs=1e-12)
    assert delta["ci_high"] == pytest.approx(max(bca_high, t_high), abs=1e-12)
    assert "scaled Tango" in delta["method"]


def test_a_stored_share_outside_zero_one_is_said_and_gets_no_tango_interval():
    # a results.json or baseline written by another version of a scorer: compared by BCa,
    # the method saying why (the runner refuses such a score when it is made)
    a = [0.2, 0.6, 1.4, 0.8, 0.5, 0.9]
    b = [0.1, 0.6, 1.2, 0.3, 0.5, 0.7]
    delta = paired_delta(model_view(_share_model(a)), model_view(_share_model(b)), "keywords.fraction")
    _, bca_low, bca_high = paired_bootstrap_diff_ci(a, b, seed=0, n_boot=2000)
    assert (delta["ci_low"], delta["ci_high"]) == pytest.approx((bca_low, bca_high), abs=1e-12)
    assert OUT_OF_RANGE in delta["method"] and "Tango" not in delta["method"].replace(OUT_OF_RANGE, "")


class Share(Scorer):
    """A plugin declaring its metrics shares; on q2 gives what the test sets."""
    name = "share"
    unbounded = frozenset({"words"})
    metrics: dict = {}
    value: float | None = 1.0
    passed: bool | None = True

    def score(self, item):
        if item.case.id != "q2":
            return Score(1.0, True, "fine", metrics={"part": 1.0, "words": 12.0})
        return Score(Share.value, Share.passed, "q2", metrics=dict(Share.metrics))


@pytest.fixture
def share_suite(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "load_plugin", lambda name: Share if name == "share" else None)
    monkeypatch.setattr(Share, "metrics", {}, raising=False)
    return make_suite(tmp_path, ["q1", "q2", "q3"], scorer="share")


def _score(suite):
    completions = [{"output": "x", "finish_reason": "stop"} for _ in range(3)]
    return score_model(suite, [make_scorer(s, suite.dir) for s in suite.scorers], completions, "sha256:m", None)


@pytest.mark.parametrize("value, passed, metrics, said", [
    (1.0, True, {"part": 1.5}, "metrics['part'] is 1.5, outside [0, 1], but the scorer declares share.part a share"),
    (1.0, True, {"part": -0.25}, "metrics['part'] is -0.25, outside [0, 1]"),
    (2.0, None, {}, "value is 2.0, outside [0, 1], but the scorer declares share a share"),
])
def test_a_share_outside_zero_one_stops_the_run_naming_the_scorer(share_suite, monkeypatch, value, passed,
                                                                  metrics, said):
    monkeypatch.setattr(Share, "value", value)
    monkeypatch.setattr(Share, "passed", passed)
    monkeypatch.setattr(Share, "metrics", metrics)
    with pytest.raises(HarnessError) as err:
        _score(share_suite)
    text = str(err.value)
    assert said in text and "item 'q2'" in text and "`unbounded`" in text


def test_numbers_the_scorer_does_not_call_shares_pass(share_suite, monkeypatch):
    # an unbounded key, a value that the verdict stands for (the metric is the pass rate), and
    # the edges themselves
    monkeypatch.setattr(Share, "value", 7.0)
    monkeypatch.setattr(Share, "metrics", {"words": 250.0, "part": 0.0})
    result, _ = _score(share_suite)
    assert result["metrics"]["share.words"]["value"] == pytest.approx((12 + 250 + 12) / 3)
    monkeypatch.setattr(Share, "unbounded", None)  # says nothing: nothing to hold it to
    monkeypatch.setattr(Share, "passed", None)
    monkeypatch.setattr(Share, "metrics", {"part": 3.0})
    result, _ = _score(share_suite)
    assert result["metrics"]["share.part"]["value"] == pytest.approx(5 / 3)


def _token_model(rows) -> dict:
    """A results.json model entry from (hits, target tokens, nll sum) per item."""
    from harness.metrics import scorer_metrics
    from harness.scorers.token_accuracy import _score as token_score

    scores = [token_score(*r) for r in rows]
    items = [{"id": f"q{i}", "category": None, "output": f"o{i}", "scores": {"token_accuracy": s.to_json()}}
             for i, s in enumerate(scores)]
    return {"fingerprint": "x", "metrics": scorer_metrics(REGISTRY["token_accuracy"]({}), scores), "items": items}


def test_a_pooled_accuracy_is_a_share_and_its_nll_is_not():
    # token accuracy per item is hits / tokens: a share with partial credit (3 of 4 tokens);
    # a few items losing some of their tokens is the sparse half-credit change of a keywords
    # share, so the pooled delta goes through the same choice (it called BCa itself)
    lengths = [4, 8, 2, 6, 10, 4, 3, 8, 5, 6, 4, 2] * 2
    hits_a = [4, 7, 2, 5, 9, 4, 2, 8, 5, 6, 3, 2] * 2
    hits_b = list(hits_a)
    for k, lost in ((1, 1), (4, 2), (16, 1)):  # 1 of 7, 2 of 9, 1 of 3 tokens
        hits_b[k] -= lost
    ref = _token_model([(h, n, 1.0 * n) for h, n in zip(hits_a, lengths)])
    cand = _token_model([(h, n, 1.0 * n + (hits_a[k] - h)) for k, (h, n) in enumerate(zip(hits_b, lengths))])
    acc = paired_delta(model_view(ref), model_view(cand), "token_accuracy")
    mean_w = sum(lengths) / len(lengths)
    za = np.array(hits_a) / mean_w
    zb = np.array(hits_b) / mean_w
    _, bca_low, bca_high = paired_bootstrap_diff_ci(za, zb, seed=0, n_boot=2000)
    t_low, t_high = scaled_tango_ci(zb - za, len(za))
    assert acc["statistic"] == "pooled" and "scaled Tango" in acc["method"]
    assert acc["diff"] == pytest.approx((sum(hits_b) - sum(hits_a)) / sum(lengths))
    # BCa's bounds -0.081 / 0.000, Tango's -0.090 / +0.018: each the wider
    assert acc["ci_low"] == pytest.approx(min(bca_low, t_low), abs=1e-12) and t_low < bca_low - 0.005
    assert acc["ci_high"] == pytest.approx(max(bca_high, t_high), abs=1e-12) and t_high > bca_high + 0.01
    nll = paired_delta(model_view(ref), model_view(cand), "token_accuracy.nll")
    assert nll["statistic"] == "pooled" and nll["method"].startswith("paired BCa bootstrap")
    assert "Tango" not in nll["method"] and "token-weighted" in nll["method"]
