"""Parity with the public release's stage-3 environment and reward (ruc-datalab/DeepAnalyze, SkyRL example
`deepanalyze_env.py` + `utils.py`), item by item.

Each case runs through both of this project's backends — ms-swift's multi-turn loop with the scheduler and reward
plugin, and the skyrl-gym environment — with code really executing and the judge answered by the project's test
server with fixed verdicts. Both must give `ours`. `release` is what the release's code gives for the same
trajectory (worked out by hand in the comment); where it differs from `ours`, `fix` names the deliberate
difference, and docs/reward.md must explain it."""

import json
from dataclasses import dataclass, field

import pytest
from conftest import REPO
from stage3_harness import PolicyTurn, skyrl_episode, swift_reward, swift_rollouts, task_environment
from transformers import AutoTokenizer

from darecipe.rollout import JUDGE_ENV
from darecipe.testserver import FakeOpenAI

SUM = "<Analyze>Sum column a.</Analyze><Code>```python\nimport pandas as pd\nprint(pd.read_csv('t.csv')['a'].sum())\n```</Code>"
ANSWER = "<Analyze>The sum is 4.</Analyze><Answer>4</Answer>"
REPORT = "<Analyze>Summarise.</Analyze><Answer># Report\nColumn a sums to 4.</Answer>"
QUIET = "<Analyze>Load it.</Analyze><Code>```python\nimport pandas as pd\ndf = pd.read_csv('t.csv')\n```</Code>"
FIVE = '{"usefulness": 5, "richness": 5, "soundness": 5, "interpretability": 5, "readability": 5}'
VERDICTS = {"qa": '{"score": 4}', "datatask": '{"accuracy": 5}', "openresearch": FIVE}


@dataclass
class Case:
    name: str
    item: int  # the numbered item of issue #19 (0: a known release bug this project fixes)
    method: str
    gold: str
    turns: list
    release: float
    ours: float
    fix: str | None = None  # the deliberate difference (a heading in docs/reward.md) when release != ours
    verdicts: dict = field(default_factory=dict)
    judge_sees: tuple[str, ...] = ()  # text the judge's request must contain
    judge_never_sees: tuple[str, ...] = ()


CASES = [
    # 1. A turn without code: the episode goes on; the turn is a failed block ("No code is provided").
    #    release: code_pass [0, 1] -> (5/5 + 1/2) / 2
    Case(
        "code-free turn continues",
        1,
        "datatask",
        "4",
        [PolicyTurn("<Analyze>Think first.</Analyze>", eos=True), SUM, ANSWER],
        release=0.75,
        ours=0.75,
    ),
    # 2. EOS inside an open <Code> block: no closed block, so no code: as in 1.
    Case(
        "EOS inside an open code block",
        2,
        "datatask",
        "4",
        [PolicyTurn("<Analyze>a</Analyze><Code>```python\nprint(1)", eos=True), SUM, ANSWER],
        release=0.75,
        ours=0.75,
    ),
    #    ... and a turn cut by the length limit inside a block
    Case(
        "turn cut by the length limit",
        2,
        "datatask",
        "4",
        [PolicyTurn("<Analyze>a</Analyze><Code>```python\nprint(", finish="length"), SUM, ANSWER],
        release=0.75,
        ours=0.75,
    ),
    # 3. Several <Answer> blocks in one turn: the turn ends at the first </Answer>, whose answer is scored.
    #    release: acc("4") = 1, judge 4 -> (1 + 4/5) / 2
    Case(
        "several answers in one turn",
        3,
        "qa",
        "4",
        ["<Analyze>x</Analyze><Answer>4</Answer><Answer>5</Answer>"],
        release=0.9,
        ours=0.9,
    ),
    # 4. A data task answered without running any code: the release leaves the code term out (5/5 alone).
    Case(
        "datatask without any code",
        4,
        "datatask",
        "4",
        ["<Analyze>By eye: 4.</Analyze><Answer>4</Answer>"],
        release=1.0,
        ours=0.5,
        fix="A data task answered without code",
    ),
    # 5. A block that prints nothing: the release counts it failed (`if observation:`) -> code_pass [0, 1].
    Case(
        "block that prints nothing",
        5,
        "datatask",
        "4",
        [QUIET, SUM, ANSWER],
        release=0.75,
        ours=1.0,
        fix="Success is the exit status",
    ),
    #    ... a block that succeeds but prints "[Error]:": the release's string test counts it failed -> [0]
    Case(
        "successful block printing [Error]:",
        5,
        "datatask",
        "4",
        ["<Analyze>x</Analyze><Code>```python\nprint('[Error]: no rows dropped')\n```</Code>", ANSWER],
        release=0.5,
        ours=1.0,
        fix="Success is the exit status",
    ),
    # 6. The fence check: stripped block starts with ```python and ends with ```.
    Case(
        "```python3 fence passes",
        6,
        "datatask",
        "4",
        [SUM.replace("```python\n", "```python3\n"), ANSWER],
        release=1.0,
        ours=1.0,
    ),
    Case(
        "``` python fence fails",
        6,
        "datatask",
        "4",
        [SUM.replace("```python\n", "``` python\n"), ANSWER],
        release=-1.0,
        ours=-1.0,
    ),
    Case(
        "one-line ```python block passes",
        6,
        "datatask",
        "4",
        ["<Analyze>x</Analyze><Code>```python print(4)```</Code>", ANSWER],
        release=1.0,
        ours=1.0,
    ),
    # 7. "Answer:" inside the answer: what follows it is compared.  (1 + 4/5) / 2
    Case(
        "'The final Answer: 4'",
        7,
        "qa",
        "4",
        ["<Analyze>x</Analyze><Answer>The final Answer: 4</Answer>"],
        release=0.9,
        ours=0.9,
    ),
    # 8. The datatask judge's scale is 0-5: a 0 is a 0.  (0/5 + 1) / 2
    Case(
        "datatask judge scores 0",
        8,
        "datatask",
        "4",
        [SUM, ANSWER],
        release=0.5,
        ours=0.5,
        verdicts={"datatask": "The answer is wrong.\nSCORE: 0"},
    ),
    #    An unreadable verdict: the release adds one 0 term (mean of 0, code 1, turns 2/10);
    #    here it is asked again, then every judge term takes the bottom of its scale: (5 * 1/5 + 1 + 2/10) / 7
    Case(
        "unreadable openresearch verdict",
        8,
        "openresearch",
        "a: 1, 3",
        [SUM, REPORT],
        release=(0 + 1 + 0.2) / 3,
        ours=(5 * 0.2 + 1 + 0.2) / 7,
        fix="An unreadable verdict",
        verdicts={"openresearch": "I cannot grade this."},
    ),
    # 9. What the judge sees. qa: the whole trajectory and the correct answer (release: ANALYZE_PROMPT).
    Case(
        "qa judge grades the whole trajectory",
        9,
        "qa",
        "4",
        [SUM, ANSWER],
        release=0.9,
        ours=0.9,
        judge_sees=("print(pd.read_csv('t.csv')['a'].sum())", "<Execute>\n4\n</Execute>", "# Correct answer\n4"),
    ),
    #    datatask: the final answer and the reference (release: ACC_PROMPT), not the code.  (5/5 + 1) / 2
    Case(
        "datatask judge grades the answer",
        9,
        "datatask",
        "4",
        [SUM, ANSWER],
        release=1.0,
        ours=1.0,
        judge_sees=("# The agent's final answer\n4", "# Reference solution\n4"),
        judge_never_sees=("<Code>",),
    ),
    #    openresearch: the ground truth as the data thumbnail (release: OPENDOMAIN_PROMPT).  (5 + 1 + 0.2) / 7
    Case(
        "openresearch judge gets the ground truth",
        9,
        "openresearch",
        "a: 1, 3",
        [SUM, REPORT],
        release=(5 + 1 + 0.2) / 7,
        ours=(5 + 1 + 0.2) / 7,
        judge_sees=("# Data thumbnail (what the data holds)\na: 1, 3",),
    ),
    # 0. A known release bug: a timeout is printed without "[Error]:" and counts as a success there.
    Case(
        "a timeout is a failed block",
        0,
        "datatask",
        "4",
        ["<Analyze>x</Analyze><Code>```python\nimport time\ntime.sleep(30)\n```</Code>", ANSWER],
        release=1.0,
        ours=0.5,
        fix="Known release bugs",
    ),
]


def judge_server(case: Case):
    verdicts = {**VERDICTS, **case.verdicts}

    def reply(messages, body):
        prompt = messages[0]["content"]
        method = (
            "qa" if "grade the analysis" in prompt else "datatask" if "how accurately" in prompt else "openresearch"
        )
        return verdicts[method]

    return FakeOpenAI(reply=reply)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DARECIPE_TEST_KEY", "sk-dummy")
    return task_environment(tmp_path, monkeypatch, timeout_s=2, max_trajectory_length=8000)


def judge_config(server) -> str:
    prompts = {m: str(REPO / f"config/prompts/judge_{m}.v2.txt") for m in ("qa", "datatask", "openresearch")}
    return json.dumps(
        {
            "backend": "openai",
            "model": "judge",
            "base_url": server.base_url,
            "api_key_env": "DARECIPE_TEST_KEY",
            "max_in_flight": 4,
            "timeout_s": 5,
            "max_retries": 0,
            "backoff_s": 0,
            "backoff_max_s": 0,
            "sampling": {"temperature": 0.0},
            "parse_retries": 1,
            "on_unparseable": "lowest",
            "prompts": prompts,
        }
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_both_backends_give_our_reward(case, tiny_vocab, env, monkeypatch):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    with judge_server(case) as server:
        monkeypatch.setenv(JUDGE_ENV, judge_config(server))
        (out,), _ = swift_rollouts(tok, [case.turns + [ANSWER]])
        swift = swift_reward(out, case.method, case.gold)
        swift_bodies = [m["content"] for b in server.bodies for m in b["messages"]]
        steps = skyrl_episode(case.turns, case.method, case.gold)
        sky_bodies = [m["content"] for b in server.bodies for m in b["messages"]][len(swift_bodies) :]
    assert steps[-1]["done"]
    assert swift == pytest.approx(case.ours, abs=1e-6), "ms-swift backend"
    assert steps[-1]["reward"] == pytest.approx(case.ours, abs=1e-6), "skyrl-gym backend"
    for bodies in (swift_bodies, sky_bodies):
        for text in case.judge_sees:
            assert any(text in b for b in bodies), text
        for text in case.judge_never_sees:
            assert not any(text in b for b in bodies), text


def test_every_difference_from_the_release_is_a_documented_fix():
    doc = (REPO / "docs/reward.md").read_text()
    for c in CASES:
        if c.release != pytest.approx(c.ours):
            assert c.fix, f"{c.name}: differs from the release ({c.release} vs {c.ours}) without a documented fix"
        if c.fix:
            assert f"### {c.fix}" in doc, f"docs/reward.md has no section '### {c.fix}'"


def test_every_item_of_the_comparison_has_a_case():
    assert {c.item for c in CASES} >= set(range(1, 10))
