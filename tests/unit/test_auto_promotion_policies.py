"""Which Stages a ProjectConfig's promotionPolicies let auto-promote (stages.autopromotion), after
Kargo's findMatchingPromotionPolicy: by exact name, glob, regex and label selectors, first match
wins. And how a promotion's hold or resume intent changes a Stage's holds."""

import pytest

from kargo.specs import ProjectConfigSpec
from stages.autopromotion import (
    HOLD_ANNOTATION,
    RESUME_ANNOTATION,
    PolicyError,
    effective_holds,
    enables,
    held_with,
    matching_policy,
    name_matches,
)
from stages.models import Promotion


def policies(*items: dict):
    return ProjectConfigSpec.model_validate({"promotionPolicies": list(items)}).promotionPolicies


def enabled_for(name: str, *items: dict, labels: dict | None = None) -> bool:
    return enables(policies(*items), name, labels or {})


def test_a_stage_policy_selects_its_stage_by_exact_name():
    rules = ({"stage": "test", "autoPromotionEnabled": True},)
    assert enabled_for("test", *rules)
    assert not enabled_for("test-2", *rules)
    assert not enabled_for("tes", *rules)


def test_a_selector_name_without_prefix_is_exact():
    rules = ({"stageSelector": {"name": "uat"}, "autoPromotionEnabled": True},)
    assert enabled_for("uat", *rules)
    assert not enabled_for("uat-eu", *rules)


def test_glob_names_match_as_doublestar_does():
    assert name_matches("glob:uat-*", "uat-eu")
    assert not name_matches("glob:uat-*", "prod-eu")
    assert name_matches("glob:{test,uat}", "uat")
    assert name_matches("glob:u?t", "uat")
    assert name_matches("glob:prod-[ab]", "prod-b")
    assert not name_matches("glob:prod-[ab]", "prod-c")
    assert not name_matches("glob:UAT", "uat")  # case matters
    assert enabled_for(
        "uat-eu", {"stageSelector": {"name": "glob:uat-*"}, "autoPromotionEnabled": True}
    )


def test_regex_names_are_unanchored_re2_patterns():
    assert name_matches("regex:eu", "prod-eu-1")
    assert name_matches("regex:^prod-(eu|us)$", "prod-us")
    assert not name_matches("regex:^prod-(eu|us)$", "prod-us-2")
    assert name_matches("regexp:^prod", "prod-1")
    assert not name_matches("regexp:^prod", "xprod")
    # RE2: linear however hostile the pattern, so no budget of time is needed for it.
    assert not name_matches("regex:^(a+)+$", "a" * 5000 + "b")


def test_patterns_that_cannot_be_evaluated_are_errors_not_matches():
    with pytest.raises(PolicyError, match="missing"):
        name_matches("regex:(", "test")
    with pytest.raises(PolicyError, match="limit"):
        name_matches("glob:" + "{a,b}" * 11, "a" * 11)  # 2048 expansions: over the budget
    with pytest.raises(PolicyError):
        enabled_for("test", {"stageSelector": {"name": "regex:["}, "autoPromotionEnabled": True})


def test_match_labels_all_have_to_hold():
    rules = (
        {
            "stageSelector": {"matchLabels": {"tier": "dev", "team": "a"}},
            "autoPromotionEnabled": True,
        },
    )
    assert enabled_for("x", *rules, labels={"tier": "dev", "team": "a", "other": "1"})
    assert not enabled_for("x", *rules, labels={"tier": "dev"})
    assert not enabled_for("x", *rules, labels={"tier": "prod", "team": "a"})


@pytest.mark.parametrize(
    "operator,values,labels,expected",
    [
        ("In", ["dev", "test"], {"tier": "dev"}, True),
        ("In", ["dev", "test"], {"tier": "prod"}, False),
        ("In", ["dev"], {}, False),
        ("NotIn", ["prod"], {"tier": "dev"}, True),
        ("NotIn", ["prod"], {"tier": "prod"}, False),
        ("NotIn", ["prod"], {}, True),  # Kubernetes: an absent label is not in any set
        ("Exists", None, {"tier": ""}, True),
        ("Exists", None, {}, False),
        ("DoesNotExist", None, {}, True),
        ("DoesNotExist", None, {"tier": "dev"}, False),
    ],
)
def test_match_expressions_follow_kubernetes(operator, values, labels, expected):
    requirement = {"key": "tier", "operator": operator}
    if values is not None:
        requirement["values"] = values
    rule = {"stageSelector": {"matchExpressions": [requirement]}, "autoPromotionEnabled": True}
    assert enabled_for("x", rule, labels=labels) is expected


def test_malformed_label_requirements_are_errors():
    for requirement in (
        {"key": "tier", "operator": "In"},
        {"key": "tier", "operator": "Exists", "values": ["x"]},
        {"key": "tier", "operator": "Matches", "values": ["x"]},
    ):
        rule = {"stageSelector": {"matchExpressions": [requirement]}, "autoPromotionEnabled": True}
        with pytest.raises(PolicyError):
            enabled_for("x", rule, labels={"tier": "dev"})


def test_a_name_and_labels_together_must_both_match():
    rule = {
        "stageSelector": {"name": "glob:prod-*", "matchLabels": {"auto": "yes"}},
        "autoPromotionEnabled": True,
    }
    assert enabled_for("prod-eu", rule, labels={"auto": "yes"})
    assert not enabled_for("prod-eu", rule, labels={"auto": "no"})
    assert not enabled_for("uat", rule, labels={"auto": "yes"})


def test_the_first_matching_policy_wins_even_when_a_later_one_matches():
    rules = (
        {"stage": "prod", "autoPromotionEnabled": False},
        {"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": True},
        {"stage": "uat", "autoPromotionEnabled": False},
    )
    assert not enabled_for("prod", *rules)
    assert enabled_for("uat", *rules)  # the glob comes first
    assert enabled_for("test", *rules)
    assert matching_policy(policies(*rules), "uat", {}).stageSelector.name == "glob:*"


def test_no_matching_policy_and_no_policies_enable_nothing():
    assert not enabled_for("test")
    assert not enabled_for("test", {"stage": "uat", "autoPromotionEnabled": True})
    # autoPromotionEnabled defaults to false.
    assert not enabled_for("test", {"stage": "test"})
    # An empty selector selects every Stage.
    assert enabled_for("anything", {"stageSelector": {}, "autoPromotionEnabled": True})


def promotion(name: str, freight: str, intent: dict) -> Promotion:
    return Promotion(
        name=name,
        freight_name=freight,
        actor="email:ann@example.com",
        annotations=intent,
        status={"freight": {"name": freight, "origin": {"kind": "Warehouse", "name": "app"}}},
    )


def test_a_hold_intent_holds_and_a_resume_intent_releases():
    requested = {"Warehouse/app"}
    older = promotion("test.01.aaaaaaa", "aaaaaaa", {HOLD_ANNOTATION: "Warehouse/app"})
    holds = held_with({}, older, requested)
    assert holds == {
        "Warehouse/app": {
            "freightName": "aaaaaaa",
            "origin": {"kind": "Warehouse", "name": "app"},
            "promotionName": "test.01.aaaaaaa",
            "actor": "email:ann@example.com",
        }
    }
    newest = promotion("test.02.bbbbbbb", "bbbbbbb", {RESUME_ANNOTATION: "Warehouse/app"})
    assert held_with(holds, newest, requested) == {}
    # A promotion without intent (an auto-promotion) changes nothing; holds of origins the
    # Stage no longer requests go.
    assert held_with(holds, promotion("test.03.c", "c", {}), requested) == holds
    assert held_with(holds, promotion("test.03.c", "c", {}), set()) == {}


def test_open_promotions_intent_counts_already_the_newest_wins():
    hold = promotion("test.01.aaaaaaa", "aaaaaaa", {HOLD_ANNOTATION: "Warehouse/app"})
    resume = promotion("test.02.bbbbbbb", "bbbbbbb", {RESUME_ANNOTATION: "Warehouse/app"})
    assert set(effective_holds({}, ["app"], [hold])) == {"Warehouse/app"}
    assert effective_holds({}, ["app"], [hold, resume]) == {}
    durable = {"Warehouse/app": {"freightName": "x"}}
    assert effective_holds(durable, ["app"], [resume]) == {}
    assert effective_holds(durable, ["app"], []) == durable
