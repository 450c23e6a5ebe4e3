"""A scripted stand-in model for the TIR loop: it writes fixed text.

Each row's script is the text its model writes, whatever is appended to it
(tool output, hints). One character is one token. A decode call writes on
from where the row stopped until a stop string ends in what this call wrote
('stop', as the sampler matches them), the call's budget is spent
('length'), or the script ends (then an EOS token: 'eos'). `extended` and
`rewound` record what the loop did to each row.
"""

import dataclasses

from jaxreason.reasoning.tir import Piece


@dataclasses.dataclass
class ScriptedLM:
  scripts: list  # One string per row.
  stop_strings: tuple = ()

  def start(self, prompts):
    assert len(prompts) == len(self.scripts), (len(prompts), len(self.scripts))
    self.pos = [0] * len(prompts)
    self.extended = [[] for _ in prompts]
    self.rewound = [0] * len(prompts)
    self.decode_calls = 0

  def decode(self, max_new):
    assert len(max_new) == len(self.scripts)
    self.decode_calls += 1
    pieces = []
    for i, budget in enumerate(max_new):
      script, out = self.scripts[i], ''
      if budget <= 0:
        pieces.append(Piece('', 0, 'length'))
        continue
      finish = 'length'
      while len(out) < budget:
        if self.pos[i] >= len(script):
          finish = 'eos'
          break
        out += script[self.pos[i]]
        self.pos[i] += 1
        if any(out.endswith(s) for s in self.stop_strings):
          finish = 'stop'
          break
      pieces.append(Piece(out, len(out) + (finish == 'eos'), finish))
    return pieces

  def extend(self, texts):
    assert len(texts) == len(self.scripts)
    for i, t in enumerate(texts):
      if t:
        self.extended[i].append(t)

  def rewind(self, rows):
    for i in rows:
      self.rewound[i] += 1


@dataclasses.dataclass(frozen=True)
class FakeResult:
  stdout: str
  stderr: str = ''
  exit_code: int = 0
  status: str = 'ok'


def eval_executor(code, *, timeout_s, memory_mb):
  """Runs `print(<expression>)` scripts by evaluating the expression."""
  del timeout_s, memory_mb
  assert code.startswith('print(') and code.endswith(')'), code
  return FakeResult(str(eval(code[6:-1], {})) + '\n')  # pylint: disable=eval-used
