import numpy as np
import pytest
import torch

from localkit_registry import DuplicateEntryError
from scoredist import UnknownEntryError, apply_rule, get_rule, list_rules, mtl_aqa_dives


def _arrays(annotations):
    keys = sorted(annotations)
    judges = np.stack([np.asarray(annotations[k]["judge_scores"], dtype=float) for k in keys])
    difficulty = np.array([annotations[k]["difficulty"] for k in keys])
    final = np.array([annotations[k]["final_score"] for k in keys])
    return keys, judges, difficulty, final


def test_diving_reproduces_1384_of_1412_official_mtl_aqa_scores(mtl_aqa):
    annotations, _, _ = mtl_aqa
    keys, judges, difficulty, final = _arrays(annotations)
    predicted = get_rule("diving")(judges, difficulty)
    ok = np.abs(predicted - final) <= 0.05
    assert len(keys) == 1412
    # The published rule holds for 1,384 dives; the other 28 carry penalties or recording
    # errors (e.g. (1, 70): judges give 37.95, the official score is 18.15).
    assert int(ok.sum()) == 1384
    misses = {keys[i]: (final[i], round(float(predicted[i]), 2)) for i in np.flatnonzero(~ok)}
    assert misses[(1, 70)] == (18.15, 37.95)
    assert misses[(2, 1)] == (88.3, 88.2)


def test_float32_input_gives_the_decimal_result_and_float64_input_is_unchanged(mtl_aqa):
    # The README's example: float32 tensors (torch's default) of a dive's marks and its 3.2.
    judges = torch.tensor([[9.5, 9.0, 9.5, 9.0, 8.5, 9.5, 8.5]])
    final = get_rule("diving")(judges, torch.tensor([3.2]))
    assert final.dtype == torch.float64 and float(final) == 88.0 and repr(float(final)) == "88.0"

    annotations, _, _ = mtl_aqa
    _, judges, difficulty, official = _arrays(annotations)
    exact = np.sort(judges, axis=1)[:, 2:5].sum(axis=1) * difficulty  # float64 throughout, as before
    assert np.array_equal(get_rule("diving")(judges, difficulty), exact)
    as_float32 = get_rule("diving")(torch.from_numpy(judges).float(), torch.from_numpy(difficulty).float())
    assert np.array_equal(as_float32.numpy(), exact)
    assert np.array_equal(get_rule("diving")(judges.astype(np.float32), difficulty.astype(np.float32)), exact)
    assert int((np.abs(exact - official) <= 0.05).sum()) == 1384


def test_as_float64_reads_narrow_floats_as_their_decimals():
    from scoredist._rules import as_float64

    values = torch.tensor([3.2, 87.45, 1e-8, float("inf"), float("nan")])
    widened = as_float64(values)
    assert widened.dtype == torch.float64
    assert widened[:4].tolist() == [3.2, 87.45, 1e-8, float("inf")] and widened[4].isnan()
    assert as_float64(torch.tensor([3.2], dtype=torch.float16)).tolist() == [3.2]
    assert as_float64(torch.tensor([3.2], dtype=torch.bfloat16)).tolist() == [3.203125]
    assert as_float64(np.array([[0.1]], np.float32)).tolist() == [[0.1]]
    assert as_float64(np.array([0.1])).tolist() == [0.1] and as_float64([1, 2]).tolist() == [1.0, 2.0]
    precise = torch.tensor([3.2000000476837158], dtype=torch.float64)
    assert as_float64(precise) is not precise and as_float64(precise).tolist() == precise.tolist()


def test_diving_on_the_embedded_copy_matches_the_pickle(mtl_aqa):
    dives = mtl_aqa_dives()
    judges = np.array([d.judge_scores for d in dives])
    result = get_rule("diving")(judges, np.array([d.difficulty for d in dives]))
    assert int((np.abs(result - np.array([d.final_score for d in dives])) <= 0.05).sum()) == 1384


def test_sum_is_the_jigsaws_global_rating(jigsaws):
    labels, _ = jigsaws
    subs = torch.tensor([labels[k] for k in sorted(labels)], dtype=torch.float64)
    total = get_rule("sum")(subs)
    assert torch.is_tensor(total) and total.shape == (103,)
    assert total.min() >= 6 and total.max() <= 30
    torch.testing.assert_close(total, subs.sum(dim=1))


def test_rules_by_hand():
    judges = torch.tensor([[9.5, 9.0, 9.5, 9.0, 8.5, 9.5, 8.5], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0]])
    assert get_rule("diving")(judges, torch.tensor([3.2, 2.0])).tolist() == pytest.approx([88.0, 24.0])
    assert get_rule("diving")(judges).tolist() == pytest.approx([27.5, 12.0])  # execution total
    assert get_rule("mean")(judges[1:]).tolist() == pytest.approx([31 / 7])
    assert get_rule("trimmed-mean")(judges[1:]).tolist() == pytest.approx([4.0])
    assert get_rule("trimmed-mean")(judges[1:], trim=2).tolist() == pytest.approx([4.0])
    assert get_rule("trimmed-mean")(judges[1:], trim=0).tolist() == pytest.approx([31 / 7])
    assert get_rule("sum")(judges[1:], torch.tensor([0.5])).tolist() == pytest.approx([15.5])


def test_array_in_array_out_and_unknown_keywords_ignored():
    out = get_rule("mean")(np.array([[1.0, 3.0]]), None, context="ignored")
    assert isinstance(out, np.ndarray) and out.tolist() == [2.0]


@pytest.mark.parametrize(
    ("rule", "judges", "difficulty", "message"),
    [
        ("diving", np.ones((2, 6)), None, r"rule 'diving' needs exactly 7 judge scores per sample, got 6"),
        ("diving", np.ones((2, 8)), np.ones(2), r"needs exactly 7 judge scores per sample, got 8"),
        ("trimmed-mean", np.ones((1, 2)), None, r"needs at least 3 judge scores per sample, got 2"),
        ("sum", np.ones(7), None, r"needs judge scores of shape \(N, J\), got \(7,\)"),
        ("sum", np.array([[1.0, np.nan]]), None, r"judge scores of sample #0 contain NaN"),
        ("diving", np.ones((2, 7)), np.ones(3), r"needs one difficulty per sample, shape \(2,\), got \(3,\)"),
        ("diving", np.ones((1, 7)), np.array([np.nan]), r"difficulty of sample #0 is NaN"),
    ],
)
def test_bad_rule_input_is_explained(rule, judges, difficulty, message):
    with pytest.raises(ValueError, match=message):
        get_rule(rule)(judges, difficulty)


def test_builtins_are_entry_points_and_unknown_names_get_suggestions():
    assert {"diving", "sum", "mean", "trimmed-mean"} <= set(list_rules())
    assert list_rules("trim*") == ["trimmed-mean"]
    with pytest.raises(UnknownEntryError, match=r"unknown rule 'divng'.*Closest matches: diving.*misspelled"):
        get_rule("divng")


def test_a_third_party_rule_plugs_in_without_touching_the_core(fake_dist):
    fake_dist(
        "acme-gymnastics",
        {"scoredist.rules": {"gymnastics": "acme_gym:gymnastics"}},
        {
            "acme_gym": """
                from scoredist import check_judge_scores

                def gymnastics(judge_scores, difficulty=None, **kwargs):
                    scores, dd = check_judge_scores(judge_scores, difficulty, rule="gymnastics", num_judges=5)
                    execution = 10.0 - scores.sort(dim=1).values[:, 1:4].mean(dim=1)
                    return dd + (10.0 - execution)
            """
        },
    )
    assert "gymnastics" in list_rules()
    out = apply_rule("gymnastics", torch.tensor([[8.0, 8.5, 9.0, 9.0, 9.5]]), torch.tensor([5.5]))
    assert out.tolist() == pytest.approx([5.5 + (8.5 + 9.0 + 9.0) / 3])
    with pytest.raises(ValueError, match="rule 'gymnastics' needs exactly 5 judge scores per sample, got 7"):
        apply_rule("gymnastics", torch.ones(1, 7), torch.ones(1))


def test_a_rule_breaking_the_contract_is_named_with_its_distribution(fake_dist):
    fake_dist(
        "broken-rules",
        {"scoredist.rules": {"bad-shape": "broken_rules:bad"}},
        {"broken_rules": "def bad(judge_scores, difficulty=None, **kw):\n    return judge_scores\n"},
    )
    with pytest.raises(
        ValueError, match=r"rule 'bad-shape' from 'broken-rules' returned shape \(2, 3\) for 2 samples"
    ):
        apply_rule("bad-shape", torch.ones(2, 3))


def test_two_distributions_claiming_one_rule_name_is_an_error(fake_dist):
    fake_dist(
        "clash-rules",
        {"scoredist.rules": {"diving": "clash_rules:diving"}},
        {"clash_rules": "diving = None\n"},
    )
    with pytest.raises(DuplicateEntryError, match=r"'diving'.*'clash-rules 1.0'.*'localkit-scoredist"):
        get_rule("diving")
