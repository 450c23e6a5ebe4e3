"""The sampler end to end: HF greedy parity, compile-once, seeds, rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreason.models import hf
from jaxreason.sampling import DecodeState
from jaxreason.sampling import SamplingParams
from jaxreason.sampling import Sampler
from jaxreason.sampling import attention as sampling_attention
from jaxreason.sampling import reference
from jaxreason.sampling import sampler as sampler_lib

from sampling_testlib import BATCH, CONFIG, SAMPLER_KW, prompts_of
from sampling_testlib import random_params

LENGTHS = [6, 13, 1, 21]


def _sample(sampler, params, prompts, seed, max_new=16, **sampling):
  state = sampler.prefill(params, prompts)
  sp = SamplingParams.make(state.batch_size, **sampling)
  return sampler.decode(params, state, sp, jax.random.key(seed), max_new)


def test_greedy_matches_transformers_generate(sampler, tmp_path):
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  hf_config = transformers.Qwen2Config(**{
      k: v for k, v in hf.config_to_hf(CONFIG).items()
      if k not in ('architectures', 'dtype', 'torch_dtype')})
  model = transformers.Qwen2ForCausalLM(hf_config).eval()
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      p.copy_(1.0 + 0.2 * noise if 'norm' in name else 0.3 * noise)
  model.save_pretrained(tmp_path)
  config, params = hf.load_checkpoint(str(tmp_path))
  assert config == CONFIG  # Same static config: the compiled sampler is reused.
  prompts = prompts_of(LENGTHS, seed=11)
  _, out = _sample(sampler, params, prompts, 0, temperature=0.0)
  ours = out.token_lists()
  for prompt, tokens in zip(prompts, ours):
    with torch.no_grad():
      ref = model.generate(
          torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt)),
          do_sample=False, max_new_tokens=16, min_new_tokens=16,
          eos_token_id=None, pad_token_id=0)
    assert tokens == ref[0, len(prompt):].tolist()
  assert out.finish_reasons() == ['length'] * BATCH
  # And the cache-free reference decoder of this repository.
  assert ours == reference.greedy_generate(
      params, CONFIG, prompts, max_new_tokens=16, eos_id=-1, batch_size=BATCH)


def test_decode_compiles_once(params, sampler):
  prompts = prompts_of(LENGTHS, seed=12)
  _sample(sampler, params, prompts, 0)  # Compiled (here or earlier).
  traces = dict(sampler_lib.TRACE_COUNTS)
  # pylint: disable-next=protected-access
  compiled = sampler_lib.decode_loop._cache_size()
  settings = [dict(temperature=0.0), dict(temperature=0.3, top_p=0.5),
              dict(temperature=[1.5, 0.0, 0.7, 1.0], top_k=[3, 0, 5, 0],
                   min_p=0.2)]
  for i, sampling in enumerate(settings):
    _, out = _sample(sampler, params, prompts, i, max_new=9 + i, **sampling)
    assert max(len(t) for t in out.token_lists()) == 9 + i
  assert dict(sampler_lib.TRACE_COUNTS) == traces
  # pylint: disable-next=protected-access
  assert sampler_lib.decode_loop._cache_size() == compiled


def test_deterministic_given_seed(params, sampler):
  prompts = prompts_of(LENGTHS, seed=13)
  runs = [_sample(sampler, params, prompts, seed, temperature=1.0)[1]
          for seed in (5, 5, 6)]
  assert runs[0].token_lists() == runs[1].token_lists()
  np.testing.assert_array_equal(np.asarray(runs[0].logprobs),
                                np.asarray(runs[1].logprobs))
  assert runs[0].token_lists() != runs[2].token_lists()
  # Streams follow (seed, row, position): splitting a decode changes nothing.
  sp = SamplingParams.make(BATCH, temperature=1.0)
  state = sampler.prefill(params, prompts)
  state, first = sampler.decode(params, state, sp, jax.random.key(5), 6)
  _, rest = sampler.decode(params, state, sp, jax.random.key(5), 10)
  assert [a + b for a, b in zip(first.token_lists(), rest.token_lists())
         ] == runs[0].token_lists()


def test_shared_prefill_equals_repeated_prompts(params, sampler):
  prompts = prompts_of([9, 4], seed=14)
  rng = jax.random.key(3)
  sp = SamplingParams.make(BATCH, temperature=1.0, top_p=0.95)
  shared = sampler.prefill(params, prompts, num_samples=2)
  repeated = sampler.prefill(params, [prompts[0]] * 2 + [prompts[1]] * 2)
  np.testing.assert_allclose(np.asarray(shared.logits),
                             np.asarray(repeated.logits), atol=1e-5)
  _, a = sampler.decode(params, shared, sp, rng, 16)
  _, b = sampler.decode(params, repeated, sp, rng, 16)
  assert a.token_lists() == b.token_lists()
  np.testing.assert_allclose(np.asarray(a.logprobs), np.asarray(b.logprobs),
                             atol=1e-5)
  # Samples of one prompt differ from each other.
  assert a.token_lists()[0] != a.token_lists()[1]


def test_take_then_continue_equals_from_scratch(params, sampler):
  prompts = prompts_of(LENGTHS, seed=15)
  sp = SamplingParams.make(BATCH, temperature=1.0)
  state, out = _sample(sampler, params, prompts, 0, max_new=5,
                       temperature=1.0)
  texts = [p + t for p, t in zip(prompts, out.token_lists())]
  rows = [3, 0, 0, 2]  # Select, reorder and duplicate.
  picked = state.take(rows)
  np.testing.assert_array_equal(np.asarray(picked.lengths),
                                [len(texts[r]) for r in rows])
  _, cont = sampler.decode(params, picked, sp, jax.random.key(9), 16)
  scratch = sampler.prefill(params, [texts[r] for r in rows])
  _, ref = sampler.decode(params, scratch, sp, jax.random.key(9), 16)
  assert cont.token_lists() == ref.token_lists()
  np.testing.assert_allclose(np.asarray(cont.logprobs),
                             np.asarray(ref.logprobs), atol=1e-5)
  assert cont.token_lists()[1] != cont.token_lists()[2]  # Duplicates differ.


def test_cache_limits(params, sampler):
  size = sampler.cache_size
  with pytest.raises(ValueError, match=r'prompt 2 has 65 tokens.*64'):
    sampler.prefill(params, [[1], [2], [3] * (size + 1)])
  with pytest.raises(ValueError, match='prompt 0 has 0 tokens'):
    sampler.prefill(params, [[]])
  prompts = prompts_of([size - 3, 5, size, 1], seed=16)
  state, out = _sample(sampler, params, prompts, 0, max_new=[16, 2, 8, 0])
  assert [len(t) for t in out.token_lists()] == [3, 2, 0, 0]
  assert out.finish_reasons() == ['length'] * 4
  np.testing.assert_array_equal(np.asarray(state.lengths),
                                [size, 7, size, 1])
  with pytest.raises(ValueError, match=r'row 1: 7 cached \+ 58 appended'):
    sampler.extend(params, state, [[], [1] * 58, [], []])


def test_pallas_kernel_inside_the_sampler(params, sampler, monkeypatch):
  """The real Pallas decode kernel (interpret mode) behind attention_impl='pallas'.

  A spy records each call and runs the kernel itself; greedy tokens and
  log-probs must equal the jnp sampler's. The kernel's GPU path (the one
  interpret mode runs on a CPU) needs head_dim >= 16: the tiny config with
  head_dim 16.
  """
  del params, sampler
  config = CONFIG.replace(head_dim=16)
  params = random_params(config, seed=3)
  calls = []
  kernel = sampling_attention.decode_attention

  def spy(q, k, v, lengths, *, layer, block_size, interpret):
    calls.append((q.shape, k.shape, layer, block_size, interpret))
    return kernel(q, k, v, lengths, layer=layer, block_size=block_size,
                  interpret=interpret)

  monkeypatch.setattr(sampling_attention, 'decode_attention', spy)
  pallas = Sampler(config, eos_ids=(), attention_impl='pallas',
                   interpret=True, **SAMPLER_KW)
  jnp_sampler = Sampler(config, eos_ids=(), **SAMPLER_KW)
  prompts = prompts_of(LENGTHS, seed=17)
  _, out = _sample(pallas, params, prompts, 0, temperature=0.0)
  _, ref = _sample(jnp_sampler, params, prompts, 0, temperature=0.0)
  assert out.token_lists() == ref.token_lists()
  np.testing.assert_allclose(np.asarray(out.logprobs),
                             np.asarray(ref.logprobs), atol=1e-5)
  # Traced once per layer for decode steps only (prefill stays jnp), with
  # the stacked cache [L, B, S, K, D] and the layer index.
  assert calls == [((BATCH, 4, 16), (2, BATCH, 64, 2, 16), layer, 16, True)
                   for layer in range(2)]
  # Sampling too: same seed, same tokens.
  _, out = _sample(pallas, params, prompts, 3, temperature=1.0, top_p=0.9)
  _, ref = _sample(jnp_sampler, params, prompts, 3, temperature=1.0, top_p=0.9)
  assert out.token_lists() == ref.token_lists()


def test_row_buckets_compile_once(params, sampler):
  """generate pads rows to bucket_rows: 1..8 rows share one compilation."""
  assert [sampler_lib.bucket_rows(n) for n in (1, 8, 9, 64, 65, 130)] == [
      8, 8, 16, 64, 128, 192]
  sampler.generate(params, prompts_of([5]), max_new_tokens=4)  # Compiles.
  traces = dict(sampler_lib.TRACE_COUNTS)
  results = []
  for num_prompts, n in ((3, 1), (7, 1), (1, 8)):
    prompts = prompts_of([2 + i for i in range(num_prompts)], seed=num_prompts)
    out = sampler.generate(params, prompts, max_new_tokens=5, n=n,
                           temperature=0.0)
    assert [len(r) for r in out] == [n] * num_prompts
    results.append((prompts, out))
  assert dict(sampler_lib.TRACE_COUNTS) == traces
  # Padding rows never reach the caller; real rows are the greedy reference.
  for prompts, out in results:
    expected = reference.greedy_generate(
        params, CONFIG, prompts, max_new_tokens=5, eos_id=-1,
        batch_size=BATCH)
    for completions, tokens in zip(out, expected):
      assert [c.tokens for c in completions] == [tokens] * len(completions)
  # The padded state: 2 prompts x 3 samples -> 8 rows, the last 2 empty.
  state = sampler.prefill(params, prompts_of([4, 6]), 3, pad_rows=True)
  np.testing.assert_array_equal(np.asarray(state.lengths),
                                [4, 4, 4, 6, 6, 6, 0, 0])
  _, out = sampler.decode(params, state, SamplingParams.make(8),
                          jax.random.key(0), 4)
  assert [len(t) for t in out.token_lists()] == [4] * 6 + [0] * 2
  assert out.finish_reasons()[6:] == ['length'] * 2


def test_generate_groups_samples_by_prompt(params):
  gen = Sampler(CONFIG, eos_ids=(), **SAMPLER_KW)
  prompts = prompts_of([3, 7], seed=18)
  result = gen.generate(params, prompts, n=2, max_new_tokens=4,
                        temperature=0.0)
  assert [len(r) for r in result] == [2, 2]
  assert result[0][0].tokens == result[0][1].tokens  # Greedy.
  assert all(len(c.tokens) == 4 and c.finish_reason == 'length'
             for r in result for c in r)
  assert isinstance(DecodeState.init(CONFIG, 1, 16).logits, jax.Array)
  assert jnp.issubdtype(jnp.asarray(result[0][0].logprobs).dtype,
                        jnp.floating)
