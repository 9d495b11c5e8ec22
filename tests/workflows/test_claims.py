"""The claims' analysis: every row is measured against both cross-entropy rows, fixed in advance,
p-values are adjusted within each declared family (Holm for the primary one, Benjamini-Hochberg
for the others), and a "no difference" verdict says what its interval rules out."""

import pytest

from supcon.workflows.claims import (
    CORE_CLAIMS,
    ClaimSpec,
    adjust,
    claim_row,
    core_claims,
    equal_compute,
    excluded,
    stability,
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


def test_every_core_row_is_measured_against_both_comparators_fixed_in_advance():
    a = _analysis()
    spec = [ClaimSpec("accuracy", "claim", "clean_top1", " points", "primary")]
    rows = core_claims(a, spec, ("ce", "ce-own"), "core")
    assert [r["comparator"] for r in rows] == ["ce (simaugment)", "ce (own)"]
    assert rows[0]["difference"]["values"] == pytest.approx([2.0, 2.0, 2.0])  # supcon − ce, per seed
    assert rows[1]["difference"]["values"] == pytest.approx([1.0, 1.0, 0.5])  # supcon − ce-own
    assert "supcon − ce (simaugment)" in rows[0]["measured"] and rows[0]["verdict"] == "better"
    # a comparator the comparison lacks (no own-augmentation row) is left out, not replaced
    assert [r["comparator"] for r in core_claims(a, spec, ("ce", "ce-nope"), "core")] == ["ce (simaugment)"]


def test_the_primary_endpoints_are_clean_top1_and_mce():
    primary = [c.metric for c in CORE_CLAIMS if c.family == "primary"]
    assert primary == ["clean_top1", "mce"]
    assert {c.family for c in CORE_CLAIMS if c.metric in ("mce_unimitated", "mce_imitated")} == {"exploratory"}


def test_no_difference_says_what_the_interval_rules_out():
    paired = paired_difference([0.1, -0.2, 0.3, 0.0, -0.1], [0.0] * 5)
    d = paired.difference
    row = claim_row("c", "s", "top-1", paired, 2, True, " points")
    assert row["verdict"] == (f"no difference detected (5 seeds); rules out a difference below {d.low:+.2f} "
                              f"or above {d.high:+.2f} points")
    assert excluded(d.to_dict(), 3) == f"; rules out a difference below {d.low:+.3f} or above {d.high:+.3f}"
    out = adjust([claim_row("c", "s", "top-1", paired, 2, True, " points", "primary")])[0]
    assert out["verdict"] == row["verdict"]


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
    low, high = out[1]["difference"]["low"], out[1]["difference"]["high"]
    assert out[1]["verdict"] == (f"no difference detected after adjustment (5 seeds, adjusted p "
                                 f"{out[1]['p_adjusted']:.3g}); rules out a difference below {low:+.2f} or above {high:+.2f}")
    assert out[5]["verdict"].startswith("no difference detected (5 seeds); rules out")
    assert out[0]["verdict"] == "better" and out[2]["verdict"] == "better" and out[3]["verdict"] == "worse"
    assert rows[0]["p"] == out[0]["p"]  # the unadjusted p is kept


def test_a_claim_spec_declares_its_family():
    spec = ClaimSpec("accuracy", "claim", "clean_top1", " points", family="primary")
    a = _analysis()
    row = core_claims(a, [spec], ("ce",), "core")[0]
    assert row["family"] == "primary" and row["higher_is_better"] is True
    assert adjust([row])[0]["p_adjusted"] == pytest.approx(row["p"])  # a family of one: unchanged


def test_equal_compute_pairs_supcon_with_each_cross_entropy_row_at_equal_passes():
    supcon = {"clean_top1": [91.0, 92.0, 90.0], "mce": [0.9, 0.95, 1.0]}
    ce = {"ce": {"clean_top1": [90.5, 91.0, 90.5], "mce": [1.0, 1.0, 1.0]},
          "ce-own": {"clean_top1": [91.5, 92.5, 90.0], "mce": [0.8, 0.9, 0.85]}}
    rows, data = equal_compute(supcon, ce, {"ce": "32 epochs of ce", "ce-own": "32 epochs of ce (own)"}, "s")
    assert [(r["comparator"], r["family"]) for r in rows] == [
        ("32 epochs of ce", "secondary"), ("32 epochs of ce", "secondary"),
        ("32 epochs of ce (own)", "secondary"), ("32 epochs of ce (own)", "secondary")]
    assert rows[0]["difference"]["values"] == pytest.approx([0.5, 1.0, -0.5])
    assert rows[3]["difference"]["values"] == pytest.approx([0.1, 0.05, 0.15])
    assert rows[3]["higher_is_better"] is False  # mCE: lower is better


def test_stability_compares_supcon_spread_with_each_comparator():
    results = {"lr": {"supcon": {"x0.25": [90.0, 91.0], "x1": [91.0, 91.0], "x4": [92.0, 91.0]},
                      "ce": {"x0.25": [85.0, 88.0], "x1": [90.0, 90.0], "x4": [80.0, 92.0]},
                      "ce-own": {"x0.25": [89.0, 90.0], "x1": [90.0, 91.0], "x4": [91.0, 92.0]}}}
    rows, data = stability(results, 2, {"lr": "s"}, {"ce": "ce", "ce-own": "ce (own)"})
    std = lambda *v: float(__import__("statistics").stdev(v))  # noqa: E731
    assert data["spread"]["lr"]["supcon"] == pytest.approx([std(90, 91, 92), std(91, 91, 91)])
    assert rows[0]["difference"]["values"] == pytest.approx([std(90, 91, 92) - std(85, 90, 80), 0.0 - std(88, 90, 92)])
    assert [r["comparator"] for r in rows] == ["ce", "ce (own)"]


def test_the_stability_setting_names_factors_of_the_selected_lr():
    from supcon.workflows.study import _factor_setting

    assert _factor_setting("lr", 4) == "4 epochs, lr x0.25, x1, x4 the selected one"
    augmentations = "simaugment, autoaugment, randaugment, stacked-randaugment"
    assert _factor_setting("augmentation", 4) == f"4 epochs, augmentation in {augmentations}"
