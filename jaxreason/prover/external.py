"""An external prover behind the checker's ProofReport (Isabelle via PISA).

Isabelle cannot be installed here, so nothing in this repository calls a
real server; this module fixes the interface a user with Isabelle plugs in.

  prover = PisaClient(host='localhost', port=8000, timeout_s=60)
  report = prover.check(theory_text, proof_text)   # -> ProofReport

`ExternalProver` is the Protocol: anything with `check(statement, proof)`
returning a ProofReport. `PisaClient` speaks one JSON object per line over
TCP to a thin adaptor in front of a PISA server (PISA itself is gRPC; the
adaptor, not provided, opens a theory, runs the proof's steps one `have` at
a time and answers). Request and response encoding are pure functions,
tested without a server. See docs/prover.md.

Request:  {"theory": str, "proof": [str, ...], "timeout_s": float}
Response: {"proved": bool, "failed_step": int | null, "reason": str}
  failed_step follows check_proof: the first step Isabelle rejects, or
  len(proof) when the steps hold but the goal does not close.
A server error, a malformed answer or a timeout is an unproved report,
never an accepted proof.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Protocol, Sequence

from jaxreason.prover.checker import ProofReport


class ExternalProver(Protocol):

  def check(self, statement: str, proof: Sequence[str]) -> ProofReport:
    """Checks `proof` (ordered steps) of `statement` (prover syntax)."""
    ...


def encode_request(statement: str, proof: Sequence[str],
                   timeout_s: float) -> bytes:
  if not isinstance(statement, str) or not statement.strip():
    raise ValueError('external prover: statement must be non-empty text')
  if isinstance(proof, str) or not all(isinstance(s, str) for s in proof):
    raise ValueError('external prover: proof must be a list of step strings')
  return (json.dumps({'theory': statement, 'proof': list(proof),
                      'timeout_s': float(timeout_s)}) + '\n').encode()


def decode_response(data: bytes, n_steps: int) -> ProofReport:
  """The server's line as a ProofReport; anything malformed is unproved."""
  try:
    obj = json.loads(data.decode())
    proved, failed, reason = obj['proved'], obj['failed_step'], obj['reason']
  except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
    return ProofReport(False, 0, f'external prover: malformed response '
                       f'({type(e).__name__}: {e})')
  if proved is True and failed is None:
    return ProofReport(True, None, str(reason))
  if proved is not False or not (isinstance(failed, int)
                                 and 0 <= failed <= n_steps):
    return ProofReport(False, 0, f'external prover: inconsistent response '
                       f'proved={proved!r} failed_step={failed!r}')
  return ProofReport(False, failed, str(reason))


@dataclasses.dataclass(frozen=True)
class PisaClient:
  """ExternalProver over a JSON-lines socket (see module docstring)."""
  host: str
  port: int
  timeout_s: float = 60.0

  def check(self, statement: str, proof: Sequence[str]) -> ProofReport:
    request = encode_request(statement, proof, self.timeout_s)
    try:
      with socket.create_connection((self.host, self.port),
                                    timeout=self.timeout_s + 5) as conn:
        conn.sendall(request)
        buf = b''
        while not buf.endswith(b'\n'):
          chunk = conn.recv(65536)
          if not chunk:
            break
          buf += chunk
    except socket.timeout:
      return ProofReport(False, 0, 'external prover: timeout (never '
                         'accepted)')
    except OSError as e:
      return ProofReport(False, 0, f'external prover at {self.host}:'
                         f'{self.port} unreachable: {e}')
    return decode_response(buf, len(proof))
