"""Pallas decode attention: one new query token per row against its KV cache.

`decode_attention(q, k, v, lengths)` attends each row's query heads to the
first `lengths[b]` cache entries with an online (flash) softmax over key blocks
of `block_size`. The block loop's trip count is `ceil(lengths[b] / block_size)`
per row, so blocks past a row's length are never read: a short chain of thought
in a cache sized for 32k tokens costs what its tokens cost.

Two small kernels share the math (`_flash_step`):

* GPU (Pallas Triton lowering, selected explicitly with
  `plgpu.CompilerParams`, since jax's default GPU lowering is Mosaic GPU).
  Grid (B, K, splits): each program handles the G query heads of one KV head,
  so each K/V block is loaded once per group, over one contiguous range of
  blocks (flash-decoding split, so B * K small still fills the SMs; splits
  past a row's length exit at once). Their float32 (acc, m, l) partials are
  combined in jnp. K/V stay in global memory (strided [S, D] views); block
  loads go to registers. Constraints (Triton needs power-of-two tensor sizes;
  `tl.dot` needs M, N, K >= 16): `block_size` and D powers of two >= 16 (S is
  free). G is zero-padded to max(16, next_pow2(G)) query rows.
* TPU (Mosaic). Grid (B,) with `lengths` scalar-prefetched into SMEM; K/V stay
  in HBM (`memory_space=ANY`) viewed as [B, S, K*D], and [block_size, K*D]
  blocks are double-buffered into VMEM by manual DMA. All K heads of a block
  are handled by one program with a block-diagonal query [H, K*D] (zeros
  outside its head's D lanes), so no VMEM slice ever splits the lane dim
  (works for D=64) and every cache byte is still read once; the K-fold MXU
  work is free in this HBM-bound regime. The wrapper takes the diagonal blocks
  of the [B, H, K*D] result. Constraints ((8, 128) tiling: second-minor block
  dims multiple of 8 for f32 / 16 for bf16, or full): `block_size` and S
  multiples of 8 (f32) / 16 (bf16); H and K*D are full dims. `block_size` is
  first clamped to S on both backends.

The stacked cache. The sampler keeps all layers in one [L, B, S, K, D] array
and passes it with a static `layer` (or, for a `scan_layers` model, the loop's
traced layer index). The GPU kernel reads that layer in place: its BlockSpec
index map adds a static layer offset, and a traced layer is a [1] operand the
kernel adds to its loads' offsets, so no [B, S, K, D] slice (a copy of the
layer's whole cache, every step) is made. The TPU kernel still takes
the slice: it views a layer as lane-dense [B, S, K*D], and on TPU merging
(K, D) into one minor dim is in general a relayout (a copy) whether or not
the layer is sliced first, since the (8, 128)-tiled layout of [..., K, D]
pads K. Reading in place there needs the cache stored as [L, B, S, K*D] (a
layout change of `jaxreason.sampling.cache`), left for when the TPU path is
tuned on a TPU.

The contract, and what the tests compare against, is
`jaxreason.models.attention.decode_attention_reference` (re-exported here).

The last block is clamped to start at S - block_size when S is not a multiple
of `block_size`; positions below i * block_size (already seen) or >= length
are masked in both the logits and V, so garbage (even NaN) past a row's length
never reaches the output. Softmax state and accumulation are float32; for bf16
inputs the probabilities are cast to bf16 for the PV matmul (standard flash).
With `interpret=True` either kernel runs on CPU (the TPU one under TPU
interpret mode, which simulates its DMAs and checks races / out-of-bounds
reads). On a CPU backend pass `interpret=True` (Pallas cannot compile for
CPU); `interpret` is never switched on implicitly, so an AOT lowering for
TPU / GPU from a CPU host (`.trace(...).lower(lowering_platforms=...)`) gets
the real Mosaic / Triton kernel.
"""

from __future__ import annotations

import functools
import math

import jax
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as plgpu
import jax.numpy as jnp

_F32 = jnp.float32


def _block_masks(i, length, block_size: int, seq_len: int):
  """Start of block i (clamped into the cache) and its row / column masks."""
  start = jnp.minimum(i * block_size, seq_len - block_size)
  row = start + lax.broadcasted_iota(jnp.int32, (1, block_size), 1)
  col = start + lax.broadcasted_iota(jnp.int32, (block_size, 1), 0)
  new = lambda pos: (pos >= i * block_size) & (pos < length)
  return start, new(row), new(col)


def _flash_step(q, k, v, valid_row, valid_col, carry, *, scale, precision):
  """One online-softmax step over a key block.

  Args:
    q: [M, E] queries (inputs' dtype).
    k: [T, E] key block.
    v: [T, E] value block.
    valid_row: [1, T] bool, keys to attend to.
    valid_col: [T, 1] bool, the same mask laid out along V's rows.
    carry: (m [M, 1], l [M, 1], acc [M, E]) float32 running max, softmax
      denominator and unnormalized output.
    scale: softmax scale.
    precision: dot precision (HIGHEST makes f32 dots exact on both backends).

  Returns:
    The updated carry.
  """
  m, l, acc = carry
  dims = (((1,), (1,)), ((), ()))
  s = lax.dot_general(q, k, dims, precision=precision,
                      preferred_element_type=_F32) * scale
  s = jnp.where(valid_row, s, -jnp.inf)  # Block 0 / any read block has a key.
  m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
  corr = jnp.exp(m - m_new)
  p = jnp.exp(s - m_new)
  v = jnp.where(valid_col, v, jnp.zeros_like(v))  # 0 * NaN would leak.
  pv = lax.dot_general(p.astype(v.dtype), v, (((1,), (0,)), ((), ())),
                       precision=precision, preferred_element_type=_F32)
  return m_new, corr * l + jnp.sum(p, axis=1, keepdims=True), corr * acc + pv


def _init_carry(rows: int, width: int):
  return (jnp.full((rows, 1), -jnp.inf, _F32), jnp.zeros((rows, 1), _F32),
          jnp.zeros((rows, width), _F32))


def _gpu_kernel(len_ref, *refs, block_size, blocks_per_split, scale,
                precision, dynamic_layer):
  """Flash loop over one sequence split of one (row, KV head).

  Refs: len [1], (layer [1] if dynamic_layer), q [Gp, D], k / v [S, D]
  (strided views; [L, S, D] with a dynamic layer, indexed by layer[0]);
  outputs are this split's float32 partials: acc [Gp, D] (unnormalized),
  m / l [Gp, 1].
  """
  if dynamic_layer:
    layer_ref, q_ref, k_ref, v_ref, acc_ref, m_ref, l_ref = refs
    layer = layer_ref[0]
    load = lambda ref, blk: ref[layer, blk, :]
  else:
    q_ref, k_ref, v_ref, acc_ref, m_ref, l_ref = refs
    load = lambda ref, blk: ref[blk, :]
  length = len_ref[0]
  seq_len = k_ref.shape[-2]
  first = pl.program_id(2) * blocks_per_split
  last = jnp.minimum(first + blocks_per_split, pl.cdiv(length, block_size))
  q = q_ref[...]

  def body(i, carry):
    start, valid_row, valid_col = _block_masks(i, length, block_size, seq_len)
    blk = pl.ds(start, block_size)
    return _flash_step(q, load(k_ref, blk), load(v_ref, blk), valid_row,
                       valid_col, carry, scale=scale, precision=precision)

  # Splits past the row's length run no iterations (m = -inf, l = 0).
  m_ref[...], l_ref[...], acc_ref[...] = lax.fori_loop(
      first, last, body, _init_carry(*q_ref.shape))


def _decode_gpu(q, k, v, lengths, layer, block_size, num_splits, interpret):
  """k, v: the stacked [L, B, S, K, D] cache; `layer` is read in place.

  `layer` is a Python int (in the BlockSpec index map) or a traced int32
  scalar (`scan_layers`): then it is an operand, the K/V views keep the L
  axis and the kernel offsets into it by the layer it reads.
  """
  b, h, d = q.shape
  s, kh = k.shape[2], k.shape[3]
  g = h // kh
  gp = max(16, pl.next_power_of_2(g))
  for name, x in (('block_size', block_size), ('head_dim', d)):
    if x < 16 or x & (x - 1):
      raise ValueError(f'GPU kernel needs {name} a power of two >= 16: {x}')
  total = pl.cdiv(s, block_size)
  num_splits = num_splits or max(1, 128 // (b * kh))  # ~128+ programs.
  per = pl.cdiv(total, min(num_splits, total))
  ns = pl.cdiv(total, per)
  qg = jnp.pad(q.astype(k.dtype).reshape(b, kh, g, d),
               ((0, 0), (0, 0), (0, gp - g), (0, 0)))
  q_spec = pl.BlockSpec((None, None, gp, d), lambda i, j, c: (i, j, 0, 0))
  dynamic_layer = not isinstance(layer, int)
  len_spec = pl.BlockSpec((1,), lambda i, j, c: (i,))
  if dynamic_layer:
    # [L, S, D] strided views of (row i, KV head j); the kernel picks layer.
    kv_spec = pl.BlockSpec((k.shape[0], None, s, None, d),
                           lambda i, j, c: (0, i, 0, j, 0))
    in_specs = [len_spec, pl.BlockSpec((1,), lambda i, j, c: (0,)), q_spec,
                kv_spec, kv_spec]
    operands = (lengths, jnp.reshape(layer, (1,)).astype(jnp.int32), qg, k,
                v)
  else:
    # A strided [S, D] view of (layer, row i, KV head j): no layer slice is
    # materialized, the kernel addresses the stacked cache directly.
    kv_spec = pl.BlockSpec((None, None, s, None, d),
                           lambda i, j, c: (layer, i, 0, j, 0))
    in_specs = [len_spec, q_spec, kv_spec, kv_spec]
    operands = (lengths, qg, k, v)
  part = lambda n: pl.BlockSpec((None, None, None, gp, n),
                                lambda i, j, c: (i, j, c, 0, 0))
  kernel = functools.partial(
      _gpu_kernel, block_size=block_size, blocks_per_split=per,
      scale=1 / math.sqrt(d), dynamic_layer=dynamic_layer,
      precision=lax.Precision.HIGHEST)  # IEEE f32 (not TF32); no-op for bf16.
  shape = lambda n: jax.ShapeDtypeStruct((b, kh, ns, gp, n), _F32)
  acc, m, l = pl.pallas_call(
      kernel, grid=(b, kh, ns),
      in_specs=in_specs,
      out_specs=[part(d), part(1), part(1)],
      out_shape=[shape(d), shape(1), shape(1)],
      compiler_params=plgpu.CompilerParams(num_warps=4, num_stages=2),
      interpret=interpret, name='decode_attention_gpu',
  )(*operands)
  w = jnp.exp(m - jnp.max(m, axis=2, keepdims=True))  # Split 0 is finite.
  out = jnp.sum(w * acc, axis=2) / jnp.sum(w * l, axis=2)  # [B, K, Gp, D]
  return out[:, :, :g].reshape(b, h, d).astype(q.dtype)


def _tpu_kernel(len_ref, q_ref, k_hbm, v_hbm, o_ref, k_buf, v_buf, sems, *,
                block_size, scale, precision):
  """Double-buffered flash loop over the blocks of one row, all KV heads.

  Refs: len [B] (SMEM), q [H, KD], k / v [B, S, KD] (HBM), o [H, KD].
  Scratch: k_buf / v_buf [2, block_size, KD] (VMEM), sems DMA[2, 2].
  """
  b = pl.program_id(0)
  length = len_ref[b]
  seq_len = k_hbm.shape[1]
  num_blocks = pl.cdiv(length, block_size)

  def copies(i, slot):
    start = jnp.minimum(i * block_size, seq_len - block_size)
    blk = pl.ds(pl.multiple_of(start, 8), block_size)
    return [pltpu.make_async_copy(k_hbm.at[b, blk], k_buf.at[slot],
                                  sems.at[0, slot]),
            pltpu.make_async_copy(v_hbm.at[b, blk], v_buf.at[slot],
                                  sems.at[1, slot])]

  for c in copies(0, 0):
    c.start()
  q = q_ref[...]

  def body(i, carry):
    slot = lax.rem(i, 2)

    @pl.when(i + 1 < num_blocks)
    def _prefetch():
      for c in copies(i + 1, 1 - slot):
        c.start()

    for c in copies(i, slot):
      c.wait()
    _, valid_row, valid_col = _block_masks(i, length, block_size, seq_len)
    return _flash_step(q, k_buf[slot], v_buf[slot], valid_row, valid_col,
                       carry, scale=scale, precision=precision)

  carry = _init_carry(*q_ref.shape)
  _, l, acc = lax.fori_loop(0, num_blocks, body, carry)
  o_ref[...] = (acc / l).astype(o_ref.dtype)


def _decode_tpu(q, k, v, lengths, block_size, interpret):
  """k, v: one layer's [B, S, K, D] cache."""
  b, h, d = q.shape
  s, kh = k.shape[1], k.shape[2]
  g, kd = h // kh, kh * d
  sub = 8 * 4 // jnp.dtype(k.dtype).itemsize  # Sublane tile: 8 f32, 16 bf16.
  if block_size % sub or s % sub:
    raise ValueError(f'TPU kernel needs block_size ({block_size}) and S ({s}) '
                     f'multiples of {sub} for {jnp.dtype(k.dtype).name}')
  eye = jnp.eye(kh, dtype=k.dtype)
  q_bd = (q.astype(k.dtype).reshape(b, kh, g, 1, d) * eye[None, :, None, :, None]).reshape(
      b, h, kd)  # Row (j, g) holds q[j * G + g] in lanes [j * D, (j + 1) * D).
  q_spec = pl.BlockSpec((None, h, kd), lambda i, lens: (i, 0, 0))
  any_spec = pl.BlockSpec(memory_space=pl.ANY)
  precision = lax.Precision.HIGHEST if k.dtype == _F32 else None
  kernel = functools.partial(_tpu_kernel, block_size=block_size,
                             scale=1 / math.sqrt(d), precision=precision)
  if interpret:
    interpret = pltpu.InterpretParams(detect_races=True)
  out = pl.pallas_call(
      kernel,
      grid_spec=pltpu.PrefetchScalarGridSpec(
          num_scalar_prefetch=1, grid=(b,),
          in_specs=[q_spec, any_spec, any_spec], out_specs=q_spec,
          scratch_shapes=[pltpu.VMEM((2, block_size, kd), k.dtype),
                          pltpu.VMEM((2, block_size, kd), v.dtype),
                          pltpu.SemaphoreType.DMA((2, 2))]),
      out_shape=jax.ShapeDtypeStruct((b, h, kd), q.dtype),
      compiler_params=pltpu.CompilerParams(dimension_semantics=('parallel',)),
      interpret=interpret, name='decode_attention_tpu',
  )(lengths, q_bd, k.reshape(b, s, kd), v.reshape(b, s, kd))
  out = out.reshape(b, kh, g, kh, d)
  return jnp.stack([out[:, j, :, j] for j in range(kh)], axis=1).reshape(
      b, h, d)


def decode_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                     lengths: jax.Array, *, layer: int | jax.Array | None = None,
                     block_size: int = 256, interpret: bool = False,
                     backend: str | None = None,
                     num_splits: int | None = None) -> jax.Array:
  """Grouped-query decode attention of one new token per row (Pallas).

  The contract (and the reference the tests check) is
  `jaxreason.models.attention.decode_attention_reference` applied to
  (q, k[layer], v[layer], lengths).

  Args:
    q: [B, H, D] queries of the new token, already RoPE-rotated; H = K * G.
      Cast to the cache dtype for the matmuls.
    k: [B, S, K, D] key cache (S static, e.g. 32768), or all layers'
      [L, B, S, K, D] with `layer` picking one.
    v: like k.
    lengths: [B] int32, valid cache entries per row, 1 <= lengths[b] <= S.
      Entries at index >= lengths[b] are never used; whole blocks at or past
      ceil(lengths[b] / block_size) are never read. Values are traced: new
      lengths do not recompile.
    layer: with a stacked cache, the layer to attend to: a Python int, or an
      int32 scalar array (traced, e.g. the layer index of a `scan_layers`
      model's loop; not range-checked). The GPU kernel reads it in place (its
      BlockSpec, or with a traced layer the kernel, offsets into the stacked
      array); the TPU kernel takes the slice k[layer] first, see the module
      docstring.
    block_size: keys per flash step (clamped to S); see the module docstring
      for the per-backend constraints.
    interpret: run in Pallas interpret mode (needed on CPU, e.g. tests).
    backend: 'gpu' (Triton) or 'tpu' (Mosaic); default: jax.default_backend(),
      with 'gpu' on CPU.
    num_splits: GPU only: programs per (row, KV head) along the sequence
      (flash-decoding), combined in float32 afterwards; default
      max(1, 128 // (B * K)) so small batches still fill the GPU.

  Returns:
    [B, H, D] in q.dtype: softmax(q k^T / sqrt(D)) v over each row's valid
    entries, computed in float32.
  """
  kw = dict(block_size=block_size, interpret=interpret, backend=backend,
            num_splits=num_splits)
  if layer is None or isinstance(layer, int):
    return _decode_static_layer(q, k, v, lengths, layer=layer, **kw)
  if k.ndim != 5 or jnp.shape(layer) != ():
    raise ValueError(f'a traced layer needs k [L, B, S, K, D] and a scalar '
                     f'layer, got k {k.shape}, layer {jnp.shape(layer)}')
  return _decode_traced_layer(q, k, v, lengths, layer, **kw)


@functools.partial(jax.jit,
                   static_argnames=('layer', 'block_size', 'interpret',
                                    'backend', 'num_splits'))
def _decode_static_layer(q, k, v, lengths, *, layer, block_size, interpret,
                         backend, num_splits):
  if layer is None:
    if k.ndim != 4:
      raise ValueError(f'k must be [B, S, K, D] (or [L, B, S, K, D] with '
                       f'layer=...), got {k.shape}')
    k, v, layer = k[None], v[None], 0  # A free reshape.
  elif k.ndim != 5 or not 0 <= layer < k.shape[0]:
    raise ValueError(f'layer={layer} needs k [L, B, S, K, D] with '
                     f'0 <= layer < L, got {k.shape}')
  return _decode(q, k, v, lengths, layer, block_size, interpret, backend,
                 num_splits)


@functools.partial(jax.jit,
                   static_argnames=('block_size', 'interpret', 'backend',
                                    'num_splits'))
def _decode_traced_layer(q, k, v, lengths, layer, *, block_size, interpret,
                         backend, num_splits):
  return _decode(q, k, v, lengths, layer.astype(jnp.int32), block_size,
                 interpret, backend, num_splits)


def _decode(q, k, v, lengths, layer, block_size, interpret, backend,
            num_splits):
  """Checks shapes and runs the backend's kernel on the stacked k, v."""
  b, h, d = q.shape
  if k.shape != v.shape or (k.shape[1], k.shape[4]) != (b, d):
    raise ValueError(f'Bad shapes: q {q.shape}, k {k.shape}, v {v.shape}')
  if h % k.shape[3] or lengths.shape != (b,):
    raise ValueError(f'H={h} must be a multiple of K={k.shape[3]} and lengths '
                     f'[B]; got lengths {lengths.shape}')
  platform = jax.default_backend()
  backend = backend or ('tpu' if platform == 'tpu' else 'gpu')
  block_size = min(block_size, k.shape[2])
  lengths = lengths.astype(jnp.int32)
  if backend == 'gpu':
    return _decode_gpu(q, k, v, lengths, layer, block_size, num_splits,
                       interpret)
  if backend == 'tpu':
    if isinstance(layer, int):
      k_layer, v_layer = k[layer], v[layer]
    else:
      k_layer = lax.dynamic_index_in_dim(k, layer, 0, keepdims=False)
      v_layer = lax.dynamic_index_in_dim(v, layer, 0, keepdims=False)
    return _decode_tpu(q, k_layer, v_layer, lengths, block_size, interpret)
  raise ValueError(f"backend must be 'gpu' or 'tpu', got {backend!r}")
