"""The one registry of data-set names: the 13 stage-1 sets, the 12 interaction categories and the 3 RL sets.

Everything else derives from here: the rules' set lists and wildcard constraints, the roles of the stage-1 mix,
the file-task kinds, the check of `stage1_data.extra_sets` names, and the file names of the released data set
(`RUC-DataLab/DataScience-Instruct-500K`, record counts from its file names, docs/recipe.md §3-§5).
"""

from __future__ import annotations

from dataclasses import dataclass

from .reward import METHODS

ROLES = ("general_reasoning", "structured_knowledge", "data_science", "file")


@dataclass(frozen=True)
class SynthesisKind:
    """How a synthesised stage-1 set is made (the teacher's request and the reply's check: darecipe.stage1.KINDS)."""

    tasks: str  # the task file it reads: results/data/stage1/tasks/<tasks>.jsonl
    needs_cues: bool = False  # the vocabulary of reasoning cues (stage1_data.cues)
    needs_sandbox: bool = False  # the teacher's code runs


SYNTHESIS_KINDS = {
    "distill": SynthesisKind("tableqa"),
    "refine": SynthesisKind("tableqa", needs_cues=True),
    "tablegpt": SynthesisKind("tablegpt"),
    "file": SynthesisKind("file", needs_sandbox=True),
}


@dataclass(frozen=True)
class Stage1Set:
    name: str
    role: str  # one of ROLES: the share of the stage-1 mix it counts towards
    made_by: str  # "synthesis": the rule stage1_synth writes it with the teacher; "file": you supply it
    released: int  # records in the released file reasoning/<name>_<released>.json (0: not in the release)
    kind: str | None = None  # synthesised sets: distill | refine | tablegpt | file (darecipe.stage1.KINDS)
    prompt: str | None = None  # synthesised sets: the teacher's prompt, stage1_data.prompts.<prompt>
    refines: str | None = None  # kind refine: the set whose records it rewrites


STAGE1_SETS = {
    s.name: s
    for s in (
        Stage1Set("SKGInstruct", "structured_knowledge", "file", 199_989),
        Stage1Set("TableQA_distillation", "data_science", "synthesis", 39_301, "distill", "distill"),
        Stage1Set(
            "TableQA_refinement", "data_science", "synthesis", 39_301, "refine", "refine", "TableQA_distillation"
        ),
        Stage1Set("TableGPT", "data_science", "synthesis", 29_448, "tablegpt", "tablegpt"),
        Stage1Set("file_database", "file", "synthesis", 3_833, "file", "file"),
        Stage1Set("file_csv", "file", "synthesis", 3_007, "file", "file"),
        Stage1Set("file_xlsx", "file", "synthesis", 3_663, "file", "file"),
        Stage1Set("file_any", "file", "synthesis", 2_520, "file", "file"),
        Stage1Set("math", "general_reasoning", "file", 20_000),
        Stage1Set("code", "general_reasoning", "file", 20_000),
        Stage1Set("science", "general_reasoning", "file", 20_000),
        Stage1Set("instruction_following", "general_reasoning", "file", 20_000),
        Stage1Set("other", "general_reasoning", "file", 19_998),
    )
}
SET_ROLES = {name: s.role for name, s in STAGE1_SETS.items()}
# The teacher prompts of the synthesised sets: stage1_data.prompts.<name>, config/prompts/<name>.txt by default.
STAGE1_PROMPTS = tuple(dict.fromkeys(s.prompt for s in STAGE1_SETS.values() if s.prompt))
SYNTHESISED_SETS = tuple(n for n, s in STAGE1_SETS.items() if s.made_by == "synthesis")
SUPPLIED_SETS = tuple(n for n, s in STAGE1_SETS.items() if s.made_by == "file")
FILE_KINDS = tuple(n for n, s in STAGE1_SETS.items() if s.role == "file")


@dataclass(frozen=True)
class Category:
    name: str
    goal: str  # what the questioner's tasks of this category are about
    released: int  # trajectories in the released file interation/<name>_<released>.json


CATEGORIES = {
    c.name: c
    for c in (
        Category(
            "data_pipeline",
            "an end-to-end pipeline: load, clean, transform and summarise the data in several steps",
            3_601,
        ),
        Category(
            "data_preparation",
            "preparing data for analysis: joining, reshaping, deriving columns, saving a tidy file",
            3_311,
        ),
        Category(
            "data_cleaning",
            "finding and fixing data-quality problems: missing values, duplicates, inconsistent values",
            1_616,
        ),
        Category(
            "data_analysis", "a focused analytical question answered with statistics computed from the data", 3_936
        ),
        Category("data_insight", "a question whose answer is an insight or pattern discovered in the data", 1_062),
        Category(
            "research_database", "an open research question over a SQLite database, answered with SQL and analysis", 818
        ),
        Category("research_xlsx", "an open research question over Excel workbooks", 848),
        Category("research_other", "an open research question over the given files", 3_505),
        Category("research_data_preparation", "a research-grade data preparation task with documented decisions", 488),
        Category("research_data_analysis", "a research-grade analysis with several angles on the data", 1_339),
        Category("research_data_insight", "a research question whose answer is a set of supported insights", 1_351),
        Category(
            "research_report_generation",
            "a written data-science report with findings supported by computed numbers",
            4_327,
        ),
    )
}

# Stage-3 RL sets, one per reward method (darecipe.reward.METHODS): our name -> the file names the release uses.
RL_SETS = {m.rl_set: m.released_files for m in METHODS.values()}
RELEASED_RL_TASKS = 15_000  # about 15K in the paper (the release's RL file names carry no counts)
# The release's folder of stage-2 files is spelled `interation/`; a corrected `interaction/` is accepted too.
INTERACTION_DIRS = ("interation", "interaction")

PROVENANCES = ("released", "synthesised", "supplied")


def alternation(names) -> str:
    """A wildcard constraint matching exactly these names."""
    return "|".join(sorted(names, key=len, reverse=True))


def released_total() -> dict[str, int]:
    """Records per stage in the release, from its file names (docs/recipe.md §3-§4)."""
    return {
        "stage1": sum(s.released for s in STAGE1_SETS.values()),
        "stage2": sum(c.released for c in CATEGORIES.values()),
    }
