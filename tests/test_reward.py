"""docs/recipe.md §6, table-driven: every expected reward below is computed by hand in its comment."""

import pytest

from darecipe.judge import parse_scores
from darecipe.reward import RewardInput, compute_reward

# A well-formed trajectory: <Analyze>, one ```python block with its <Execute>, <Answer>{}</Answer>.
OK = "<Analyze>a</Analyze><Code>```python\nprint(1)\n```</Code><Execute>\n1\n</Execute><Answer>{}</Answer>"
UNFENCED = OK.replace("```python\n", "```\n")
NO_CODE = "<Analyze>a</Analyze><Answer>{}</Answer>"
FIVE = {"usefulness": 5, "richness": 4, "soundness": 3, "interpretability": 2, "readability": 1}

CASES = [
    # --- qa: (acc + judge/5) / 2; without a judge: acc
    ("qa exact, judge 5", RewardInput(OK.format("42"), "qa", "42", judge={"score": 5}), (1 + 1) / 2),
    ("qa exact, judge 3", RewardInput(OK.format("42"), "qa", "42", judge={"score": 3}), (1 + 0.6) / 2),
    ("qa wrong, judge 2", RewardInput(OK.format("41"), "qa", "42", judge={"score": 2}), (0 + 0.4) / 2),
    ("qa wrong, judge 1", RewardInput(OK.format("41"), "qa", "42", judge={"score": 1}), (0 + 0.2) / 2),
    ("qa exact, no judge", RewardInput(OK.format("42"), "qa", "42"), 1.0),
    ("qa 'Answer:' prefix stripped", RewardInput(OK.format("Answer: 42"), "qa", "42"), 1.0),
    ("qa case and trailing dot", RewardInput(OK.format("Paris."), "qa", "paris"), 1.0),
    ("qa without code is fine", RewardInput(NO_CODE.format("42"), "qa", "42", judge={"score": 4}), (1 + 0.8) / 2),
    ("qa unfenced code has no gate", RewardInput(UNFENCED.format("42"), "qa", "42"), 1.0),
    # --- format gate: missing <Analyze>, </Analyze>, <Answer> or </Answer> -> -1, whatever else
    ("gate: no <Analyze>", RewardInput("<Answer>42</Answer>", "qa", "42", judge={"score": 5}), -1.0),
    ("gate: no </Analyze>", RewardInput("<Analyze>a<Answer>42</Answer>", "qa", "42"), -1.0),
    ("gate: no <Answer>", RewardInput("<Analyze>a</Analyze>42", "datatask", "", exec_ok=1, exec_total=1), -1.0),
    ("gate: no </Answer>", RewardInput("<Analyze>a</Analyze><Answer>42", "openresearch", "", turns=9), -1.0),
    # --- the release's fence check: the block, stripped, starts with ```python and ends with ```
    (
        "fence python3 passes",
        RewardInput(OK.replace("```python\n", "```python3\n").format("x"), "datatask", "", exec_ok=1, exec_total=1),
        1.0,
    ),
    (
        "fence one-line passes",
        RewardInput(
            OK.replace("```python\nprint(1)\n```", "```python print(1)```").format("x"),
            "datatask",
            "",
            exec_ok=1,
            exec_total=1,
        ),
        1.0,
    ),
    (
        "fence '``` python' fails",
        RewardInput(OK.replace("```python\n", "``` python\n").format("x"), "datatask", "", exec_ok=1, exec_total=1),
        -1.0,
    ),
    # --- "Answer:" inside the answer: what follows it is the answer (as the release)
    ("qa 'The final Answer: 42'", RewardInput(OK.format("The final Answer: 42"), "qa", "42"), 1.0),
    # --- datatask judge on 0-5: a 0 is a 0
    (
        "datatask judge 0",
        RewardInput(OK.format("x"), "datatask", "", exec_ok=1, exec_total=1, judge={"accuracy": 0}),
        0.5,
    ),
    # --- python-fence gate for datatask / openresearch only
    (
        "fence gate: datatask",
        RewardInput(UNFENCED.format("x"), "datatask", "", exec_ok=1, exec_total=1, judge={"accuracy": 5}),
        -1.0,
    ),
    (
        "fence gate: openresearch",
        RewardInput(UNFENCED.format("x"), "openresearch", "", exec_ok=1, exec_total=1, turns=3),
        -1.0,
    ),
    # --- datatask: mean(judge_accuracy / 5, code success rate)
    (
        "datatask 5, all blocks ok",
        RewardInput(OK.format("x"), "datatask", "", exec_ok=3, exec_total=3, judge={"accuracy": 5}),
        (1 + 1) / 2,
    ),
    (
        "datatask 3, 2 of 4 ok",
        RewardInput(OK.format("x"), "datatask", "", exec_ok=2, exec_total=4, judge={"accuracy": 3}),
        (0.6 + 0.5) / 2,
    ),
    (
        "datatask 1, no block ok",
        RewardInput(OK.format("x"), "datatask", "", exec_ok=0, exec_total=2, judge={"accuracy": 1}),
        (0.2 + 0) / 2,
    ),
    ("datatask no judge: success only", RewardInput(OK.format("x"), "datatask", "", exec_ok=1, exec_total=4), 0.25),
    ("datatask, no code ran", RewardInput(NO_CODE.format("x"), "datatask", "", judge={"accuracy": 4}), (0.8 + 0) / 2),
    # a timeout is a failed block: 3 blocks, one timed out, one error -> success 1/3
    (
        "datatask with a timeout",
        RewardInput(OK.format("x"), "datatask", "", exec_ok=1, exec_total=3, judge={"accuracy": 5}),
        (1 + 1 / 3) / 2,
    ),
    # --- openresearch: mean of 5 dims / 5, success rate, min(turns / 10, 1)
    (
        "research 5 dims, 4 turns",
        RewardInput(OK.format("r"), "openresearch", "", exec_ok=2, exec_total=2, turns=4, judge=FIVE),
        (1 + 0.8 + 0.6 + 0.4 + 0.2 + 1 + 0.4) / 7,
    ),
    (
        "research all 5, 12 turns",
        RewardInput(
            OK.format("r"), "openresearch", "", exec_ok=5, exec_total=5, turns=12, judge=dict.fromkeys(FIVE, 5)
        ),
        1.0,
    ),
    (
        "research all 1, half ok, 10 turns",
        RewardInput(
            OK.format("r"), "openresearch", "", exec_ok=1, exec_total=2, turns=10, judge=dict.fromkeys(FIVE, 1)
        ),
        (5 * 0.2 + 0.5 + 1) / 7,
    ),
    (
        "research no judge",
        RewardInput(OK.format("r"), "openresearch", "", exec_ok=3, exec_total=4, turns=5),
        (0.75 + 0.5) / 2,
    ),
    # --- over-length: 0, before any gate
    ("over-length qa", RewardInput(OK.format("42"), "qa", "42", over_length=True, judge={"score": 5}), 0.0),
    ("over-length beats the gate", RewardInput("<Answer>42", "datatask", "", over_length=True), 0.0),
    # --- an unreadable judge reply scored 'lowest' reaches the reward as 1
    ("qa judge unreadable -> lowest", RewardInput(OK.format("42"), "qa", "42", judge={"score": 1}), (1 + 0.2) / 2),
]


@pytest.mark.parametrize("inp,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reward(inp, expected):
    assert compute_reward(inp).reward == pytest.approx(expected)


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown reward method"):
        compute_reward(RewardInput(OK.format("1"), "summary", "1"))


@pytest.mark.parametrize(
    "reply,method,expected",
    [
        ('{"score": 4}', "qa", {"score": 4.0}),
        ('```json\n{"score": 3,}\n```', "qa", {"score": 3.0}),
        ('Sure! Here is my grade: {"score": 5} — well done.', "qa", {"score": 5.0}),
        ("4/5", "qa", {"score": 4.0}),
        ('{"accuracy": "2"}', "datatask", {"accuracy": 2.0}),
        (
            '{"usefulness": 5, "richness": 4, "soundness": 3, "interpretability": 2, "readability": 1,}',
            "openresearch",
            {k: float(v) for k, v in FIVE.items()},
        ),
        ('{"usefulness": 5, "richness": 4}', "openresearch", None),
        ('{"score": 7}', "qa", None),
        ('{"accuracy": 0}', "datatask", {"accuracy": 0.0}),  # the datatask scale is 0-5, as the release's prompt
        ('{"score": 0}', "qa", None),  # qa analysis is 1-5
        ("Weak: no check of {x}.\nSCORE: 4", "qa", {"score": 4.0}),  # the release's reply format
        ('Gaps: the {a, b} join is unchecked. {"accuracy": 3}', "datatask", {"accuracy": 3.0}),
        ("I cannot grade this.", "qa", None),
        (None, "datatask", None),
    ],
)
def test_judge_replies_are_parsed_robustly(reply, method, expected):
    assert parse_scores(reply, method) == expected
