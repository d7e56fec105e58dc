"""Per-category gates: `gates: {METRIC: {categories: {CAT: options}}}` gates one category's
items alone, named METRIC[CAT] in results, junit.xml and summary.md."""

from __future__ import annotations

import pytest
import yaml

from factories import item, model_result, results, suite_result
from harness.errors import HarnessError
from harness.gates import evaluate_gates
from harness.reports import junit, summary
from harness.suite import load_suite

ARCH = [f"a{i:02d}" for i in range(20)]
OPS = [f"o{i:02d}" for i in range(40)]


def suite(tmp_path, gates):
    doc = {"name": "domain", "prompt": "{{ q }}", "target": "{{ a }}", "scorers": [{"exact_match": {}}],
           "cases": [{"id": i, "q": f"{i}?", "a": "4", "category": "architecture" if i in ARCH else "operations"}
                     for i in ARCH + OPS],
           "gates": gates}
    path = tmp_path / "domain.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_suite(path)


def run(failing: set[str]):
    def items(fail):
        return [item(i, i not in fail, category="architecture" if i in ARCH else "operations") for i in ARCH + OPS]
    return suite_result({"base": model_result(items(set())), "ft": model_result(items(failing), fingerprint="sha256:ft")},
                        name="domain")


def test_a_regression_in_one_category_fails_only_its_gate(tmp_path):
    gates = {"exact_match": {"max_drop_vs_base": 0.25,
                             "categories": {"architecture": {"max_drop_vs_base": 0.05}}}}
    sr = run(set(ARCH[:8]))  # 8 of 20 architecture items break: -0.40 there, -0.13 overall
    found, _ = evaluate_gates(suite(tmp_path, gates), sr, None)
    by = {(g["metric"], g["kind"]): g for g in found}
    assert by[("exact_match", "max_drop_vs_base")]["passed"]  # the whole suite's gate does not see it
    cat = by[("exact_match[architecture]", "max_drop_vs_base")]
    assert not cat["passed"] and cat["details"]["category"] == "architecture"
    assert cat["reason"].startswith("category architecture: exact_match: ft - base = -0.400")
    sr["gates"] = found
    run_results = results([sr])
    cases = junit.context(run_results)["suites"][0]["cases"]
    assert any(c["name"] == "exact_match[architecture] max_drop_vs_base" and not c["passed"] for c in cases)
    rows = summary.context(run_results)["score_rows"]
    assert [r["cells"] for r in rows if r["metric"] == "exact_match[architecture]"] == [["1.000", "0.600"]]
    # the same run, a regression elsewhere: the architecture gate passes
    found, _ = evaluate_gates(suite(tmp_path, gates), run(set(OPS[:8])), None)
    assert [g["passed"] for g in found if g["metric"] == "exact_match[architecture]"] == [True]


def test_unknown_category_is_bad_input_naming_the_line(tmp_path):
    with pytest.raises(HarnessError) as exc:
        suite(tmp_path, {"exact_match": {"categories": {"architecure": {"max_drop_vs_base": 0.0}}}})
    assert "architecure" in str(exc.value) and "domain.yaml:" in str(exc.value)
    assert "categories of this suite: architecture, operations" in str(exc.value)
    with pytest.raises(HarnessError):  # critical is not a per-category option
        suite(tmp_path, {"exact_match": {"categories": {"architecture": {"critical": ["a01"]}}}})


def test_a_category_that_sets_no_bound_is_bad_input(tmp_path):
    """A category gets only the options written for it, so `{higher_is_better: true}` alone
    made no gate at all, and a run that broke 8 of its 20 items passed with nothing said
    (before the defaults stopped applying there it got the 0.05 drop gates)."""
    with pytest.raises(HarnessError) as exc:
        suite(tmp_path, {"exact_match": {"max_drop_vs_base": 0.25,
                                         "categories": {"architecture": {"higher_is_better": True}}}})
    text = exc.value.one_line()
    assert "category 'architecture'" in text and "sets no bound" in text and "domain.yaml:" in text
    assert "gates.exact_match.categories.architecture" in text and "max_drop_vs_base" in text


def test_a_category_gate_gates_only_its_metric_with_only_its_options(tmp_path):
    """A category gate on keywords made a `repetition` gate named `keywords[architecture]`
    (the defaults of every pass/fail metric, evaluated on the category's items) and added a
    default 0.05 drop gate on the category's 16 items, which no adapter could pass: the
    domain suite with `categories: {architecture: {max_drop_vs_base: 0.3}}` failed an
    adapter whose architecture drop was -0.19 on gates nobody wrote."""
    doc = {"name": "domain", "prompt": "{{ q }}", "target": "{{ a }}",
           "scorers": [{"exact_match": {}}, {"repetition": {}}],
           "cases": [{"id": i, "q": f"{i}?", "a": "4", "category": "architecture" if i in ARCH else "operations"}
                     for i in ARCH + OPS],
           "gates": {"exact_match": {"max_drop_vs_base": 0.25,
                                     "categories": {"architecture": {"max_drop_vs_base": 0.3}}}}}
    path = tmp_path / "domain.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def items(fail, rewritten):
        out = []
        for i in ARCH + OPS:
            it = item(i, i not in fail, output="new" if i in rewritten else None,
                      category="architecture" if i in ARCH else "operations")
            it["scores"]["repetition"] = {"value": 1.0, "passed": True, "detail": "no loop"}
            out.append(it)
        return out

    # 1 of 20 architecture items breaks, every other answer is rewritten without a flip
    sr = suite_result({"base": model_result(items(set(), set())),
                       "ft": model_result(items(set(ARCH[:1]), set(ARCH + OPS)), fingerprint="sha256:ft")},
                      name="domain")
    base_doc = sr  # the same run as an approved baseline: the category gets no baseline default either
    found, warnings = evaluate_gates(load_suite(path), sr, base_doc)
    cat = [(g["metric"], g["kind"]) for g in found if "[" in g["metric"]]
    assert cat == [("exact_match[architecture]", "max_drop_vs_base")]
    assert all(g["passed"] for g in found if g["metric"] == "exact_match[architecture]")
    assert all(g["reason"].startswith("category architecture: exact_match:") for g in found if "[" in g["metric"])
    assert not [w for w in warnings if w.startswith("category architecture: repetition")]
