"""Held-out synthetic problems are disjoint from every recipe's training draw.

The quickstart pipeline trains SFT (50,000 problems), then GRPO or DPO (their
own draws); each evaluates on its held-out set. All held-out sets come from
one split by question hash (`sources.is_held_out`) that no training
draw contains.
"""

import pathlib

import pytest

from jaxreason.data import sources
from jaxreason.file_modules import load_config

REPO = pathlib.Path(__file__).resolve().parents[2]
RECIPES = ('sft', 'grpo', 'dpo')


@pytest.fixture(scope='module')
def splits():
  out = {}
  for name in RECIPES:
    c = load_config(REPO / f'configs/{name}/synthetic.py')
    train, held_out = sources.synthetic_splits(
        c.data.task, c.data.num_train, c.data.num_eval, c.data.seed)
    out[name] = ({p.question for p in train}, [p.question for p in held_out])
  return out


def test_held_out_disjoint_from_every_recipes_training_problems(splits):
  train_all = set().union(*(t for t, _ in splits.values()))
  assert len(splits['sft'][0]) > 40_000  # The real sizes, not :debug.
  for name, (_, held_out) in splits.items():
    assert len(held_out) == 256 and len(set(held_out)) == 256, name
    assert not set(held_out) & train_all, name


def test_held_out_set_does_not_depend_on_sizes():
  task = load_config(REPO / 'configs/sft/synthetic.py').data.task
  a_train, a = sources.synthetic_splits(task, 10, 64, seed=0)
  b_train, b = sources.synthetic_splits(task, 500, 256, seed=0)
  assert [p.question for p in a] == [p.question for p in b[:64]]
  assert all(sources.is_held_out(p.question) for p in b)
  assert not any(sources.is_held_out(p.question) for p in a_train + b_train)
  # Training draws are the seed's stream with held-out questions left out.
  assert [p.question for p in a_train] == [p.question for p in b_train[:10]]
  c_train, _ = sources.synthetic_splits(task, 10, 4, seed=7)
  assert [p.question for p in a_train] != [p.question for p in c_train]


def test_synthetic_traces_leave_out_the_held_out_split(tmp_path):
  task = load_config(REPO / 'configs/sft/synthetic.py').data.task
  path = sources.write_synthetic_traces(str(tmp_path / 't.jsonl'), task, 300)
  rows = sources.read_jsonl(path)
  _, held = sources.synthetic_splits(task, 1, 256, seed=0)
  held_prompts = {sources.problem_record(p)['prompt'] for p in held}
  assert len(rows) == 300
  assert not {r['prompt'] for r in rows} & held_prompts
