"""The quickstart pipeline at ':debug' size: every stage, skip, resume, report.

One module-scoped run of all stages (about a minute) is shared by the
tests; the notebook test executes experiments/quickstart.ipynb separately.
"""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from configs import quickstart as qs_config
from jaxreason.data import sources
from jaxreason.data.synthetic import arithmetic
from jaxreason.data.tokenizer import load_tokenizer
from jaxreason.recipes import quickstart
from jaxreason.recipes import quickstart_report
from jaxreason.recipes import search_eval

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('quickstart'))
  config = qs_config.get_config('debug')
  result = quickstart.train(config, workdir)
  return config, workdir, result


@pytest.mark.slow
def test_every_stage_runs_and_the_report_is_written(pipeline):
  config, workdir, result = pipeline
  assert list(result) == list(quickstart.STAGES)
  for stage in quickstart.STAGES:
    saved = quickstart.done(workdir, stage)
    assert saved is not None and saved['seconds'] >= 0, stage
  rep = result['report']['summary']
  names = {os.path.basename(p) for p in rep['plots']}
  assert names == {'learning_curves.png', 'accuracy_vs_n.png',
                   'accuracy_by_difficulty.png'}
  for p in rep['plots']:
    assert os.path.getsize(p) > 1000, p
  table = rep['table']
  got = {(r['policy'], r['method'], r['verifier']) for r in table}
  for want in [('sft', 'greedy', ''), ('sft', 'majority', ''),
               ('grpo', 'greedy', ''), ('grpo', 'majority', ''),
               ('grpo', 'best_of_n', 'prm'), ('grpo', 'beam_search', 'prm'),
               ('grpo', 'best_of_n', 'thinkprm'),
               ('tool_model_with_tool', 'tir', '')]:
    assert want in got, want
  for r in table:
    lo, hi = r['ci95']
    assert 0.0 <= lo <= r['accuracy'] <= hi <= 1.0, r
  # The same rows as Markdown and JSON, plus the claims and stage times.
  md = (pathlib.Path(workdir) / 'report' / 'results.md').read_text()
  saved = json.loads((pathlib.Path(workdir) / 'report' /
                      'results.json').read_text())
  assert len(saved['table']) == len(table)
  rows = [l for l in md.splitlines()
          if l.endswith(('| held-out |', '| large numbers |'))]
  assert len(rows) == len(table)
  assert 'GRPO above SFT at pass@1' in md and '| total |' in md
  assert set(saved['seconds']) == set(quickstart.STAGES) - {'report'}
  # Accuracy by chain length: the held-out problems mix 2-5 steps.
  for by_k in saved['by_difficulty'].values():
    assert set(by_k) <= {'2', '3', '4', '5'} and by_k


@pytest.mark.slow
def test_a_second_run_skips_finished_stages(pipeline, monkeypatch):
  config, workdir, _ = pipeline

  def fail(*_):
    raise AssertionError('a finished stage ran again')

  for stage in quickstart.STAGES:
    if stage != 'report':  # The report is rewritten from the outputs.
      monkeypatch.setitem(quickstart.STAGE_FNS, stage, fail)
  before = {s: quickstart.done(workdir, s) for s in quickstart.STAGES}
  again = quickstart.train(config, workdir)
  for s in quickstart.STAGES[:-1]:
    assert again[s] == before[s]


@pytest.mark.slow
def test_a_killed_eval_stage_keeps_its_finished_runs(pipeline, monkeypatch,
                                                     tmp_path):
  config, workdir, _ = pipeline
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  # As if killed after the first search run: no done.json, one results.json.
  os.remove(os.path.join(copy, 'eval', quickstart.DONE_FILE))
  names = list(config.eval.runs)
  missing = names[-1]
  results = os.path.join(copy, 'eval', missing, search_eval.RESULTS_FILE)
  saved = pathlib.Path(results).read_text()
  os.remove(results)
  calls = []

  def fake_run(c, d):
    calls.append(d)
    pathlib.Path(d, search_eval.RESULTS_FILE).write_text(saved)

  monkeypatch.setattr(search_eval, 'run', fake_run)
  out = quickstart.run_stage(config, copy, 'eval')
  assert calls == [os.path.join(copy, 'eval', missing)]
  assert set(out['summary']) == set(names)


def test_a_stage_without_its_inputs_names_them(tmp_path):
  config = qs_config.get_config('debug')
  with pytest.raises(ValueError, match=r"'grpo' needs \['sft'\]"):
    quickstart.run_stage(config, str(tmp_path), 'grpo')
  config.stages = ('tokenizer', 'rlhf')
  with pytest.raises(ValueError, match='rlhf'):
    quickstart.train(config, str(tmp_path))
  # As --config.stages=tokenizer,rlhf gives it: one comma-separated string.
  config.stages = ('tokenizer,rlhf',)
  with pytest.raises(ValueError, match=r"unknown \['rlhf'\]"):
    quickstart.train(config, str(tmp_path))


@pytest.mark.slow
def test_the_tokenizer_keeps_steps_apart(pipeline):
  config, workdir, _ = pipeline
  tok = load_tokenizer(os.path.join(workdir, 'tokenizer'))
  assert tok.vocab_size == config.tokenizer.vocab_size
  blank = tok.encode('\n\n')
  assert len(blank) == 1
  text = quickstart.tokenizer_texts(config)[0]
  ids = tok.encode(text)
  assert tok.decode(ids) == text
  # Every blank line of a solution is that one piece, never merged.
  assert ids.count(blank[0]) == text.count('\n\n')


def _row(policy, method, acc, lo, hi, verifier='', n=1):
  return dict(policy=policy, method=method, verifier=verifier, n=n,
              accuracy=acc, ci95=[lo, hi], split='held-out', tokens=1.0)


def test_claims_read_the_table():
  table = [_row('sft', 'greedy', 0.5, 0.4, 0.6),
           _row('grpo', 'greedy', 0.7, 0.61, 0.78),
           _row('grpo', 'majority', 0.72, 0.65, 0.8, n=8),
           _row('grpo', 'best_of_n', 0.6, 0.5, 0.7, verifier='prm', n=8)]
  got = {c['claim']: c for c in quickstart_report.claims(table, 8)}
  grpo = got['GRPO above SFT at pass@1 (greedy)']
  assert grpo['holds'] and grpo['separated']
  maj = got['majority@8 above greedy (GRPO policy)']
  assert maj['holds'] and not maj['separated']
  assert 'weighted best-of-8 with the prm verifier above majority@8' not in got
  bon = got['best-of-8 with the prm verifier above majority@8']
  assert bon['holds'] is False and (bon['a'], bon['b']) == (0.6, 0.72)
  assert got['tool use above no tool on large numbers']['holds'] is None


def test_mcnemar_against_the_binomial_formula():
  # 6 problems only a gets right, 1 only b: p = 2 * P(X <= 1), X ~ B(7, .5).
  a = [True] * 6 + [False] + [True] * 5 + [False] * 3
  b = [False] * 6 + [True] + [True] * 5 + [False] * 3
  assert quickstart_report.mcnemar_p(a, b) == pytest.approx(2 * 8 / 128)
  assert quickstart_report.mcnemar_p(a, a) == 1.0
  assert quickstart_report.mcnemar_p(b, a) == quickstart_report.mcnemar_p(
      a, b)
  with pytest.raises(ValueError, match='lengths'):
    quickstart_report.mcnemar_p(a, b[:-1])
  # With per-problem outcomes a claim carries the paired p-value.
  ra = dict(_row('grpo', 'greedy', 12 / 16, 0.5, 0.9), correct=a)
  rb = dict(_row('sft', 'greedy', 6 / 16, 0.2, 0.6), correct=b)
  (grpo, *_) = quickstart_report.claims([ra, rb], 8)
  assert grpo['p_value'] == pytest.approx(0.125)


def test_mixed_chain_lengths():
  task = qs_config.task()
  train, held_out = sources.synthetic_splits(task, 400, 100, 0)
  assert {p.num_steps for p in train} == {2, 3, 4, 5}
  assert {p.num_steps for p in held_out} == {2, 3, 4, 5}
  assert not {p.question for p in train} & {p.question for p in held_out}
  for p in train[:50]:
    check = arithmetic.check_solution(p, p.solution)
    assert check.answer_correct and all(check.step_correct)
    assert len(check.step_correct) == p.num_steps
  # One length: the stream is that task's alone, as before mixing existed.
  one = dict(task, num_steps=4)
  rng = np.random.default_rng(0)
  cfg = sources.arithmetic_config(one)
  stream = [arithmetic.generate_problem(rng, cfg) for _ in range(40)]
  expected = [p for p in stream if not sources.is_held_out(p.question)][:10]
  assert sources.train_problems(one, 10, 0) == expected
  with pytest.raises(ValueError, match='num_steps'):
    sources.arithmetic_configs(dict(task, num_steps=()))


@pytest.mark.slow
def test_the_notebook_runs_end_to_end(tmp_path):
  nbformat = pytest.importorskip('nbformat')
  nbclient = pytest.importorskip('nbclient')
  nb = nbformat.read(REPO / 'experiments' / 'quickstart.ipynb', as_version=4)
  env_before = dict(os.environ)
  os.environ.update(QUICKSTART_WORKDIR=str(tmp_path), QUICKSTART_VARIANT=
                    'debug', JAX_PLATFORMS='cpu',
                    XLA_FLAGS='--xla_force_host_platform_device_count=1')
  try:
    nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',
                            resources={'metadata': {'path': str(REPO)}}
                            ).execute()
  finally:
    os.environ.clear()
    os.environ.update(env_before)
  outputs = [o for cell in nb.cells if cell.cell_type == 'code'
             for o in cell.get('outputs', [])]
  assert not [o for o in outputs if o.get('output_type') == 'error']
  shown = [o for o in outputs if 'image/png' in o.get('data', {})]
  assert len(shown) == 3  # The three plots, displayed.
  assert (tmp_path / 'report' / 'results.md').exists()
