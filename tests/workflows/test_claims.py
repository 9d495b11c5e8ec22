"""The claims' analysis: what a row compares is an input, and p-values are adjusted within each
declared family (Holm for the primary one, Benjamini-Hochberg for the others)."""

import pytest

from supcon.workflows.claims import (
    CORE_CLAIMS,
    ClaimSpec,
    adjust,
    claim_row,
    core_claims,
    strongest,
)
from supcon.workflows.stats import benjamini_hochberg, holm, mean_interval, paired_difference


def _analysis():
    # supcon beats ce by 2 points each seed; ce-own is 1 point better than ce on test
    supcon, ce, own = [92.0, 93.0, 91.0], [90.0, 91.0, 89.0], [91.0, 92.0, 90.5]
    values = {"supcon": supcon, "ce": ce, "ce-own": own}
    return {"rows": [{"key": "ce", "label": "ce (simaugment)"}, {"key": "ce-own", "label": "ce (own)"},
                     {"key": "supcon", "label": "supcon (simaugment)"}],
            "baselines": ["ce", "ce-own"],
            "intervals": {k: {"clean_top1": mean_interval(v)} for k, v in values.items()},
            "paired": {f"supcon vs {b}": {"clean_top1": paired_difference(supcon, values[b])} for b in ("ce", "ce-own")}}


def test_the_comparator_is_an_input():
    a = _analysis()
    spec = [c for c in CORE_CLAIMS if c.metric == "clean_top1"]
    assert strongest(a, "clean_top1") == "ce-own"  # the better test mean (the old rule)
    fixed = core_claims(a, spec, {"clean_top1": "ce"}, "core")  # fixed in advance: ce
    assert fixed[0]["difference"]["values"] == pytest.approx([2.0, 2.0, 2.0])
    assert "supcon − ce (simaugment)" in fixed[0]["measured"] and fixed[0]["verdict"] == "better"
    chosen = core_claims(a, spec, {"clean_top1": strongest(a, "clean_top1")}, "core")
    assert chosen[0]["difference"]["values"] == pytest.approx([1.0, 1.0, 0.5])
    assert "family" not in fixed[0] and adjust(fixed) == fixed  # no family declared: nothing adjusted


def test_families_are_adjusted_apart_and_verdicts_follow_the_adjusted_p():
    diffs = {"a": [0.9, 1.1, 1.0, 1.2, 0.8], "b": [0.3, 0.0, 0.5, 0.2, 0.4], "c": [2.0, 2.1, 1.9, 2.05, 1.95],
             "d": [-0.5, -0.4, -0.6, -0.45, -0.55], "e": [0.1, -0.2, 0.15, 0.05, -0.1],
             "f": [0.2, -0.3, 0.1, 0.0, -0.1]}
    families = {"a": "primary", "b": "primary", "c": "secondary", "d": "secondary", "e": None, "f": "primary"}
    rows = [claim_row(k, "s", k, paired_difference(v, [0.0] * 5), 2, True, family=families[k]) for k, v in diffs.items()]
    out = adjust(rows)
    p = {k: r["p"] for k, r in zip(diffs, rows, strict=True)}
    primary, secondary = holm([p["a"], p["b"], p["f"]]), benjamini_hochberg([p["c"], p["d"]])
    assert [out[0]["p_adjusted"], out[1]["p_adjusted"], out[5]["p_adjusted"]] == pytest.approx(primary)
    assert [out[2]["p_adjusted"], out[3]["p_adjusted"]] == pytest.approx(secondary)
    assert "p_adjusted" not in out[4] and out[4] == rows[4]  # no family: as it was
    # b: the raw interval excludes 0 (p = 0.031) but Holm's doubled p (second of three) does not pass 0.05
    assert rows[1]["verdict"] == "better" and p["b"] < 0.05 < out[1]["p_adjusted"]
    assert out[1]["verdict"] == "no difference detected (5 seeds)"
    assert out[0]["verdict"] == "better" and out[2]["verdict"] == "better" and out[3]["verdict"] == "worse"
    assert rows[0]["p"] == out[0]["p"]  # the unadjusted p is kept


def test_a_claim_spec_declares_its_family():
    spec = ClaimSpec("accuracy", "claim", "clean_top1", " points", family="primary")
    a = _analysis()
    row = core_claims(a, [spec], {"clean_top1": "ce"}, "core")[0]
    assert row["family"] == "primary" and row["higher_is_better"] is True
    assert adjust([row])[0]["p_adjusted"] == pytest.approx(row["p"])  # a family of one: unchanged
