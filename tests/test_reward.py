"""Rule-based reward of RECIPE §6 (the judge terms are dropped when no judge is configured)."""

import pytest

from darecipe.reward import RewardInput, compute_reward

OK = "<Analyze>a</Analyze><Code>```python\nprint(1)\n```</Code><Execute>\n1\n</Execute><Answer>{}</Answer>"


@pytest.mark.parametrize(
    "inp,expected",
    [
        (RewardInput(OK.format("42"), "qa", "42"), 1.0),
        (RewardInput(OK.format("Answer: 42."), "qa", "42"), 1.0),
        (RewardInput(OK.format("41"), "qa", "42"), 0.0),
        (RewardInput("<Answer>42</Answer>", "qa", "42"), -1.0),  # no <Analyze>
        (RewardInput(OK.format("42"), "qa", "42", judge={"score": 4}), (1 + 0.8) / 2),
        (RewardInput(OK.format("x"), "datatask", "", exec_ok=1, exec_total=2), 0.5),
        (RewardInput(OK.format("x"), "datatask", "", exec_ok=1, exec_total=1, judge={"accuracy": 3}), (0.6 + 1) / 2),
        (RewardInput(OK.format("x").replace("```python", "```"), "datatask", "", exec_ok=1, exec_total=1), -1.0),
        (RewardInput(OK.format("x"), "openresearch", "", exec_ok=2, exec_total=2, turns=5), (1 + 0.5) / 2),
        (RewardInput(OK.format("x"), "openresearch", "", exec_ok=2, exec_total=2, turns=15), 1.0),
        (RewardInput(OK.format("42"), "qa", "42", truncated=True), 0.0),
    ],
)
def test_reward(inp, expected):
    assert compute_reward(inp).reward == pytest.approx(expected)


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown reward method"):
        compute_reward(RewardInput(OK.format("1"), "summary", "1"))
