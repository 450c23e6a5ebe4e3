"""prover.external: request/response encoding of the PISA client (no
server); malformed or inconsistent answers are never accepted."""

import json

import pytest

from jaxreason.prover.external import decode_response, encode_request


def test_request_is_one_json_line():
  data = encode_request('theorem t: "1 + 1 = (2::nat)"', ['by simp'], 7)
  assert data.endswith(b'\n') and data.count(b'\n') == 1
  assert json.loads(data) == {'theory': 'theorem t: "1 + 1 = (2::nat)"',
                              'proof': ['by simp'], 'timeout_s': 7.0}
  with pytest.raises(ValueError, match='statement'):
    encode_request('  ', [], 1)
  with pytest.raises(ValueError, match='list of step strings'):
    encode_request('theorem t', 'by simp', 1)


def test_responses_map_to_reports():
  ok = decode_response(b'{"proved": true, "failed_step": null, '
                       b'"reason": "ok"}\n', 2)
  assert ok.proved and ok.failed_step is None
  bad = decode_response(b'{"proved": false, "failed_step": 1, '
                        b'"reason": "step 1 failed"}', 2)
  assert not bad.proved and bad.failed_step == 1
  for junk in (b'', b'not json', b'{"proved": true}',
               b'{"proved": true, "failed_step": 0, "reason": ""}',
               b'{"proved": false, "failed_step": 9, "reason": ""}',
               b'{"proved": "yes", "failed_step": null, "reason": ""}'):
    r = decode_response(junk, 2)
    assert not r.proved and r.failed_step == 0, junk
