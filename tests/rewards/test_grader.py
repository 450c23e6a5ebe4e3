"""Answer extraction and equivalence (jaxreason.rewards.grader)."""

import concurrent.futures
import functools
import importlib.util
import math
import os
import pathlib
import random

import pytest

from jaxreason.rewards import grader
from jaxreason.rewards import symbolic
from jaxreason.rewards import timeout_pool

REPO = pathlib.Path(__file__).resolve().parents[2]

# (pred, gold): equivalent answers.
POSITIVE = [
    ('5', '5'),
    ('025', '25'),
    ('5.0', '5'),
    ('1,000', '1000'),
    ('10,\\!080', '10080'),
    ('\\$32,\\!348', '32348'),
    ('\\$18.90', '18.90'),
    ('0.5', '\\frac{1}{2}'),
    ('\\dfrac{1}{2}', '\\frac12'),
    ('1/2', '\\tfrac{1}{2}'),
    ('\\frac 59', '5/9'),
    ('-\\frac{35}{9}', '\\frac{-35}{9}'),
    ('1\\frac{4}{5}', '9/5'),
    ('137 \\frac{1}{2}', '275/2'),
    ('0.333333', '\\frac{1}{3}'),  # relative error 1e-6 < REL_TOL
    ('204.01', '204'),  # a decimal: relative error 5e-5 < REL_TOL
    ('50\\%', '50'),
    ('50\\%', '0.5'),
    ('0.5', '50%'),
    ('90^\\circ', '90'),
    ('90', '90^{\\circ}'),
    ('864 \\mbox{ inches}^2', '864'),
    ('15\\text{ cm}^2', '15'),
    ('18 dollars', '18'),
    ('\\text{Evelyn}', 'Evelyn'),
    ('\\textbf{east}', '\\text{East}'),
    ('\\sqrt{2}/2', '\\frac{\\sqrt2}{2}'),
    ('\\frac{\\sqrt{3}}{3}', '\\frac{1}{\\sqrt{3}}'),
    ('0.70711', '\\frac{\\sqrt{2}}{2}'),
    ('2\\sqrt{2}', '\\sqrt{8}'),
    ('18+2\\pi', '2\\pi + 18'),
    ('\\pi/2', '\\frac{\\pi}{2}'),
    ('6 - 5i', '-5i+6'),
    ('x^2+2x+1', '(x+1)^2'),
    ('\\frac{\\cos x}{\\sin x}', '\\cot x'),
    ('(1,2)', '\\left( 1, 2 \\right)'),
    ('(3, \\pi/2)', '\\left( 3, \\frac{\\pi}{2} \\right)'),
    ('[0,1)', '[0, 1)'),
    ('(-\\infty, 3]', '(-\\infty,3]'),
    ('x \\in [-2,7]', '[-2,7]'),
    ('(2,\\infty)', 'x>2'),
    ('(-\\infty,0)\\cup(1,\\infty)', '(1,\\infty) \\cup (-\\infty, 0)'),
    ('\\{1,2,3\\}', '\\{3, 2, 1\\}'),
    ('-2, 1', '1,-2'),
    ('1+\\sqrt{19}, 1-\\sqrt{19}', '1 \\pm \\sqrt{19}'),
    ('\\{-2, 1+\\sqrt5, 1-\\sqrt5\\}', '\\{1\\pm\\sqrt{5},-2\\}'),
    ('\\begin{bmatrix} 1 & 0 \\\\ 0 & 1 \\end{bmatrix}',
     '\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}'),
    ('\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}',
     '\\begin{pmatrix} -\\frac13 \\\\ 0.666667 \\end{pmatrix}'),
    ('(1,2,3)', '\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}'),
    ('x=2', '2'),
    ('2', 'x = 2'),
    ('y = 2x+1', '2x + 1 = y'),
    ('2x+1=y', 'y=1+2x'),
    ('5x - 7y + 11z = -4', '5x - 7y + 11z + 4 = 0'),
    ('x = 2, y = 3', '(2,3)'),
    ('C', '\\text{(C)}'),
    ('(B)', 'B'),
    ('\\textbf{(E)}', '\\text{(E)}'),
    ('52_8', '52_{8}'),
    ('\\boxed{7}', '7'),
    ('\\15', '15'),
    ('1.5\\times10^{3}', '1500'),
]

# (pred, gold): different answers.
NEGATIVE = [
    ('5', '6'),
    ('204.1', '204'),  # relative error 5e-4 > REL_TOL
    ('11111111101', '11111111100'),  # two integers compare exactly
    ('0.33', '\\frac{1}{3}'),
    ('\\frac{1}{3}', '\\frac{1}{4}'),
    ('50', '0.5'),  # no % sign: no scaling
    ('-5', '5'),
    ('\\sqrt{2}', '\\sqrt{3}'),
    ('2\\pi', '6.28'),  # relative error 5e-4
    ('(1,2)', '(2,1)'),
    ('(3,4)', '(3,4]'),
    ('[0,1]', '[0,1)'),
    ('(1,2)', '\\{1,2\\}'),
    ('1,2', '1,2,3'),
    ('1+\\sqrt{19}', '1 \\pm \\sqrt{19}'),
    ('x^2+1', 'x^2-1'),
    ('0', '5x - 7y + 11z + 4 = 0'),
    ('x = 3', 'x = 2'),
    ('y = 2x + 2', 'y = 2x + 1'),
    ('x^2 = 1', 'x = 1'),
    ('A', '\\text{(C)}'),
    ('5', '\\text{(C)}'),
    ('east', '\\text{west}'),
    ('\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}',
     '\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}'),
    ('\\begin{pmatrix} 1 & 2 \\end{pmatrix}',
     '\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}'),
    ('52_8', '42'),
    ('', '5'),
    ('x', '5'),
]


@pytest.fixture(scope='module', autouse=True)
def _workers():
  grader.warmup()
  yield


@pytest.mark.parametrize('pred, gold', POSITIVE)
def test_equivalent(pred, gold):
  assert grader.answers_match(pred, gold)


@pytest.mark.parametrize('pred, gold', NEGATIVE)
def test_different(pred, gold):
  assert not grader.answers_match(pred, gold)


@pytest.mark.parametrize('text, expected', [
    ('so $x = \\boxed{\\frac{1}{2}}$.', '\\frac{1}{2}'),
    ('\\boxed{\\frac{a^{2}}{\\{b\\}}} done', '\\frac{a^{2}}{\\{b\\}}'),
    ('first \\boxed{3} then \\boxed{4}.', '4'),
    ('\\boxed{5} and truncated \\boxed{\\frac{1', '5'),
    ('the area is \\fbox{12} units', '12'),
    ('$\\framebox{204}$ minutes', '204'),
    ('\\boxed 7.', '7.'),
    ('She earns 9 * 2 = $<<9*2=18>>18 a day.\n#### 18', '18'),
    ('The answer is $\\frac{3}{4}$. I hope it is correct.', '\\frac{3}{4}'),
    ('Final Answer: The final answer is $5$. I hope it is correct.', '5'),
    ('**Final Answer:** 42', '42'),
    ('The answer is 3.5.', '3.5'),
    ('**Answer:** Verna received $7.00 in change.', '7.00'),
    ('Thus 9 + 6 = 15 liters of water out of the 24 liters.', '15'),
    ('He paid $25 + $10 = $35 in all.', '35'),
    ('Therefore, $\\cos \\angle RPS = -\\frac{24}{25}$.',
     '\\cos \\angle RPS = -\\frac{24}{25}'),
    ('The total is 1,250 pages', '1,250'),
    ('no numbers here', None),
    ('', None),
])
def test_extract_answer(text, expected):
  assert grader.extract_answer(text) == expected


def test_grade():
  assert grader.grade('... so $\\boxed{\\dfrac{1}{2}}$', '0.5')
  assert grader.grade('We get 16 - 3 - 4 = 9, and 9 * 2 = 18.\n#### 18', '18')
  assert not grader.grade('\\boxed{0.4}', '0.5')
  assert not grader.grade('I do not know.', '0.5')


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  return True


def test_timeout_pool_kills_a_hung_call():
  pool = timeout_pool.TimeoutPool(max_workers=1)
  try:
    assert pool.call(timeout_pool.sleep_and_return, (0.0, 'ok'), 30.0) == 'ok'
    first = pool.call(os.getpid, (), 30.0)
    assert first != os.getpid() and _alive(first)
    out = pool.call(timeout_pool.sleep_and_return, (60.0, 'late'), 0.5)
    assert out is timeout_pool.TIMED_OUT
    # The hung worker was killed (and reaped), not left sleeping ...
    assert not _alive(first)
    # ... and a new one serves the next calls.
    second = pool.call(os.getpid, (), 30.0)
    assert second not in (first, os.getpid())
    assert pool.call(timeout_pool.sleep_and_return, (0.0, 7), 30.0) == 7
    assert pool.call(os.getpid, (), 30.0) == second
  finally:
    pool.close()


def test_timeout_pool_reports_a_raising_call_and_keeps_the_worker():
  pool = timeout_pool.TimeoutPool(max_workers=1)
  try:
    first = pool.call(os.getpid, (), 30.0)
    assert pool.call(math.sqrt, (-1.0,), 30.0) is timeout_pool.TIMED_OUT
    assert pool.call(os.getpid, (), 30.0) == first
  finally:
    pool.close()


def _worker_pids():
  # pylint: disable-next=protected-access
  return {w.process.pid for w in grader._POOL._idle}


def test_slow_sympy_expression_times_out():
  # 10^(10^8) (a 100-million-digit integer) keeps SymPy busy for minutes. The
  # worker's soft timer (SIGALRM) ends the comparison as a mismatch, although
  # the two answers are equal, and the worker survives to serve the next call.
  grader.warmup()
  before = _worker_pids()
  assert len(before) == grader._POOL.max_workers  # pylint: disable=protected-access
  assert not grader.answers_match('10^{10^{8}}+1', '1+10^{10^{8}}',
                                  timeout=1.0)
  assert all(_alive(pid) for pid in before)
  assert _worker_pids() == before
  assert grader.answers_match('\\sqrt{12}', '2\\sqrt{3}')  # Still works.


def test_hung_comparator_is_killed(monkeypatch):
  # A comparator that would answer True after a minute: the hard timeout
  # must kill its worker and answer False.
  slow = functools.partial(timeout_pool.sleep_and_return, 60.0, True)
  monkeypatch.setattr(symbolic, 'symbolic_match_job', slow)
  grader.warmup()
  before = _worker_pids()
  assert not grader.answers_match('\\sqrt{7}', '\\sqrt{7}+0', timeout=0.5)
  assert sum(not _alive(pid) for pid in before) == 1
  monkeypatch.undo()
  # The pool still answers, with a replacement worker, and the (uncached)
  # pair now gets its true answer.
  assert grader.answers_match('\\sqrt{7}', '0+\\sqrt{7}', timeout=30.0)


def test_threads_agree_with_sequential():
  pairs = POSITIVE + NEGATIVE
  expected = [grader.answers_match(p, g) for p, g in pairs]
  grader._symbolic_match.cache_clear()  # pylint: disable=protected-access
  jobs = [random.Random(k).sample(range(len(pairs)), len(pairs))
          for k in range(8)]

  def run(order):
    return {i: grader.answers_match(*pairs[i]) for i in order}

  with concurrent.futures.ThreadPoolExecutor(8) as ex:
    results = list(ex.map(run, jobs))
  for r in results:
    assert [r[i] for i in range(len(pairs))] == expected


@pytest.fixture(scope='module')
def tool():
  path = REPO / 'tools' / 'grader_agreement.py'
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('dataset, min_rate', [
    ('aime24', 1.0),  # 30/30 measured; the answer field is not the text's.
    ('gsm8k_no_hashes', 0.99),  # 1309/1319 measured, without the #### line.
    ('math500', 1.0),  # Sanity only: the answer is the solution's last box.
])
def test_reference_solutions_agree(data_dir, tool, dataset, min_rate):
  # The full data (500 + 1319 + 30 items) takes about a second.
  if dataset == 'math500':
    items = tool.math500_items(data_dir)
  elif dataset == 'gsm8k_no_hashes':
    items = tool.gsm8k_items(data_dir, 'test', 'no_hashes')
  else:
    items = tool.aime24_items(data_dir)
  result = tool.agreement(items)
  assert result['n'] == len(items) > 0
  assert result['rate'] >= min_rate, result['disagreements'][:20]
