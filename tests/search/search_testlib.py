"""A scripted `Generator` on the synthetic task, for testing search methods.

Each row writes the chain of its prompt's problem one step at a time; a step
is correct with probability `p_correct` (else its result is off by one), and
after the last step comes the box with the value the row actually reached,
then EOS. Tokens are characters. The generator keeps its own tallies (tokens
per problem, rows per problem, calls), which the tests compare with the
`Budget` the methods report.
"""

import collections
import dataclasses

import numpy as np

from jaxreason.data import synthetic
from jaxreason.search.generator import Piece


class ScriptedGenerator:

  def __init__(self, problems, p_correct=0.5, seed=0, max_new_tokens=200):
    self.by_prompt = {synthetic.format_prompt(p): p for p in problems}
    self.p_correct = p_correct
    self.max_new_tokens = max_new_tokens
    self.rng = np.random.default_rng(seed)
    self.tokens = collections.Counter()  # prompt -> generated tokens.
    self.prompt_tokens = collections.Counter()
    self.max_rows = collections.Counter()  # prompt -> most rows at once.
    self.rows = []  # [prompt, text, value, steps written, used, ended]

  def start(self, prompts):
    self.rows = []
    for p in prompts:
      self.rows.append([p, '', self.by_prompt[p].start, 0, 0, False])
      self.prompt_tokens[p] += len(p)
    return [(len(p), float(len(p))) for p in prompts]

  def select(self, rows):
    # Searches may only fork rows that exist.
    assert all(0 <= i < len(self.rows) for i in rows), (rows, len(self.rows))
    self.rows = [list(self.rows[i]) for i in rows]
    for p, count in collections.Counter(r[0] for r in self.rows).items():
      self.max_rows[p] = max(self.max_rows[p], count)

  def _step(self, row):
    prompt, _, value, k, _, _ = row
    problem = self.by_prompt[prompt]
    if k == problem.num_steps:
      return f'\\boxed{{{value}}}', 'eos'
    op, b = problem.ops[k], problem.operands[k]
    r = synthetic.apply_op(value, op, b, problem.modulus)
    if self.rng.random() >= self.p_correct:
      r = (r + 1) % problem.modulus
    row[2], row[3] = r, k + 1
    return synthetic.format_step(value, op, b, r) + '\n\n', 'stop'

  def generate(self, until, temperature, active=None):
    del temperature
    pieces = []
    for i, row in enumerate(self.rows):
      if (active is not None and not active[i]) or row[5]:
        pieces.append(Piece('', 0, 'length'))
        continue
      text, finish = '', 'stop'
      while True:
        step, finish = self._step(row)
        text += step
        if until == 'step' or finish == 'eos':
          break
      n = len(text) + (finish == 'eos')  # EOS is a token.
      if row[4] + n > self.max_new_tokens:
        text, n, finish = text[:self.max_new_tokens - row[4]], (
            self.max_new_tokens - row[4]), 'length'
      row[1] += text
      row[4] += n
      row[5] = finish in ('eos', 'length')
      self.tokens[row[0]] += n
      pieces.append(Piece(text, n, finish, float(n)))
    return pieces

  def save(self):
    return ([list(r) for r in self.rows], self.rng.bit_generator.state)

  def restore(self, saved):
    self.rows = [list(r) for r in saved[0]]


class CountingVerifier:
  """Wraps a verifier: `tokens` per judgement, tallied per question."""

  def __init__(self, inner, tokens=5):
    self.inner, self.per = inner, tokens
    self.spent = collections.Counter()

  def judge(self, questions, steps):
    assert len(questions) == len(steps), (len(questions), len(steps))
    out = self.inner.judge(questions, steps)
    for q in questions:
      self.spent[q] += self.per
    return [dataclasses.replace(j, tokens=self.per) for j in out]
