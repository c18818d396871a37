"""Silent speech: text ids, model shapes, BatchNorm modes, pretrained blocks, CTC/MFCC losses."""

from __future__ import annotations

import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from tinymyo_jax import metrics, speech_units
from tinymyo_jax.tasks import speech as speech_task
from tinymyo_jax.models import speech
from tinymyo_jax.models.tinymyo import create_model, decode_variant


def tiny_config(task="recognition", **kw):
  return speech.SpeechConfig.from_variant("test", task, **kw)


@nnx.jit(static_argnames="train")
def _forward(model, x, lengths, train, key):
  rngs = nnx.Rngs(dropout=key) if train else None
  return model(x, lengths, deterministic=not train, rngs=rngs)


def forward(model, x, lengths=None, *, train=False, seed=0):
  """Jitted forward pass (eager op-by-op dispatch is far slower); BatchStat updates persist."""
  return _forward(model, jnp.asarray(x), lengths, train, jax.random.key(seed))


# ----------------------------------------------------------------------------- text


def test_charset_and_text_round_trip():
  assert len(speech_units.CHARSET) == 37 and speech_units.NUM_CHAR_CLASSES == 38
  ids = speech_units.text_to_ids("Héllo,  World 42! Don't")
  assert ids[:5] == [8, 5, 12, 12, 15]  # h e l l o
  assert ids[5] == 37  # '|' word separator
  assert 0 not in ids
  assert speech_units.ids_to_text(ids) == "hello world 42 dont"
  assert speech_units.ids_to_text([0, 1, 0, 37, 2]) == "a b"
  with pytest.raises(ValueError, match="character id 38 is outside 0..37"):
    speech_units.ids_to_text([38])


# ----------------------------------------------------------------------------- model


def test_output_shapes_and_input_errors():
  model = speech.create_speech_model(tiny_config())
  out = forward(model, jnp.zeros((2, 161, 8)))
  assert out.shape == (2, 21, 38) and out.dtype == jnp.float32  # ceil(161/8) frames
  assert [speech_units.output_length(t) for t in (1, 7, 8, 9, 16, 1000)] == [1, 1, 1, 2, 2, 125]
  synth = speech.create_speech_model(tiny_config("synthesis"))
  assert forward(synth, jnp.zeros((3, 64, 8))).shape == (3, 8, 26)
  with pytest.raises(ValueError, match=r"got shape \(2, 8, 160\) \(channels first\?"):
    model(jnp.zeros((2, 8, 160)))
  with pytest.raises(ValueError, match="unknown speech task 'tts'"):
    speech.SpeechConfig(task="tts")


def test_full_size_parameter_count():
  # Front-end: 3 ResBlocks with 1x1 skips + w_raw_in; encoder = 8 TinyMyo blocks + norm.
  model = nnx.eval_shape(lambda: speech.create_speech_model(speech.SpeechConfig()))
  n = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  conv = lambda i, o, k: k * i * o + o  # noqa: E731
  bn = 2 * 192
  front = (conv(8, 192, 3) + conv(192, 192, 3) + conv(8, 192, 1) + 3 * bn
           + 2 * (2 * conv(192, 192, 3) + conv(192, 192, 1) + 3 * bn))
  assert n == front + (192 * 192 + 192) + 8 * 444_864 + 384 + (192 * 38 + 38)


def test_batchnorm_train_updates_stats_eval_does_not():
  model = speech.create_speech_model(tiny_config(dropout=0.0, attn_dropout=0.0, drop_path=0.0))
  x = jax.random.normal(jax.random.key(0), (2, 64, 8)) * 3.0 + 1.0
  stats = lambda: jax.tree.leaves(nnx.state(model, nnx.BatchStat))  # noqa: E731
  before = [np.array(s) for s in stats()]
  eval_out = forward(model, x)
  assert all(np.array_equal(a, b) for a, b in zip(before, stats()))
  forward(model, x, train=True)
  mean0 = np.array(model.front[0].first.bn.mean[...])
  # Running mean moves 10 % of the way from 0 to the batch mean.
  conv_out = model.front[0].first.conv(x)
  np.testing.assert_allclose(mean0, 0.1 * np.asarray(conv_out.mean(axis=(0, 1))), atol=1e-5)
  # Eval uses the running stats: one example alone gives the same output as inside the batch.
  np.testing.assert_allclose(forward(model, x[:1]), forward(model, x)[:1], atol=1e-5)
  assert not np.allclose(forward(model, x), eval_out)


def test_batchnorm_ignores_padding_when_lengths_given():
  model = speech.create_speech_model(tiny_config())
  fresh = nnx.clone(model)
  x = jax.random.normal(jax.random.key(1), (1, 64, 8))
  padded = jnp.concatenate([x, jnp.zeros((1, 64, 8))], axis=1)
  forward(model, padded, jnp.array([64]), train=True)
  mean_padded = np.array(model.front[0].first.bn.mean[...])
  forward(fresh, x, train=True)
  np.testing.assert_allclose(mean_padded, np.array(fresh.front[0].first.bn.mean[...]),
                             atol=1e-6)


# ----------------------------------------------------------------------------- losses


class FixedOutput:
  """A stand-in model that returns given outputs, to check the loss arithmetic exactly."""

  def __init__(self, out, task="recognition"):
    self.out = jnp.asarray(out, jnp.float32)
    self.config = types.SimpleNamespace(task=task, max_shift=0, num_mfcc=self.out.shape[-1])

  def check_input(self, emg):
    del emg

  def __call__(self, emg, lengths, *, deterministic, rngs):
    del emg, lengths, deterministic, rngs
    return self.out


def brute_force_ctc(log_probs, labels):
  """-log P(labels) by summing over every frame path (blank = 0)."""
  total = -np.inf
  t, v = log_probs.shape
  for path in itertools.product(range(v), repeat=t):
    if metrics.ctc_greedy_decode(np.eye(v)[list(path)]) == list(labels):
      total = np.logaddexp(total, sum(log_probs[i, p] for i, p in enumerate(path)))
  return -total


def test_ctc_loss_matches_brute_force_and_skips_infeasible():
  logits = jax.random.normal(jax.random.key(2), (2, 3, 4))
  lp = np.asarray(jax.nn.log_softmax(logits, axis=-1), np.float64)
  batch = {"emg": jnp.zeros((2, 24, 8)), "emg_len": jnp.array([24, 24]),
           # utterance 0: labels [1, 1] (needs 3 frames: a blank between); padded with 0.
           # utterance 1: [1, 2, 3, 1] cannot fit in 3 frames -> infeasible.
           "labels": jnp.array([[1, 1, 0, 0], [1, 2, 3, 1]]), "label_len": jnp.array([2, 4])}
  loss, aux = speech_task.speech_loss(FixedOutput(logits), batch, jax.random.key(0), False)
  assert float(loss) == pytest.approx(brute_force_ctc(lp[0], [1, 1]) / 2, rel=1e-4)
  assert float(aux["infeasible_fraction"]) == 0.5
  # Shorter valid length: only the first frame of utterance 0 counts (emg_len 8 -> 1 frame).
  batch2 = dict(batch, emg_len=jnp.array([16, 24]), labels=jnp.array([[3, 0, 0, 0]] * 2),
                label_len=jnp.array([1, 1]))
  loss2, aux2 = speech_task.speech_loss(FixedOutput(logits), batch2, jax.random.key(0), False)
  expected = (brute_force_ctc(lp[0, :2], [3]) + brute_force_ctc(lp[1], [3])) / 2
  assert float(loss2) == pytest.approx(expected, rel=1e-4)
  assert float(aux2["infeasible_fraction"]) == 0.0


def test_mfcc_loss_masks_padded_frames():
  out = np.zeros((1, 4, 26), np.float32)
  target = np.zeros_like(out)
  target[0, :2] = 2.0    # valid frames: error 4 per value
  target[0, 2:] = 100.0  # padded frames: must not count
  batch = {"emg": jnp.zeros((1, 32, 8)), "emg_len": jnp.array([16]), "mfcc": target}
  loss, aux = speech_task.speech_loss(FixedOutput(out, "synthesis"), batch, jax.random.key(0),
                                      False)
  assert float(loss) == pytest.approx(4.0) and float(aux["mfcc_mse"]) == pytest.approx(4.0)
  model = speech.create_speech_model(tiny_config("synthesis"))
  with pytest.raises(ValueError, match=r"mfcc target has shape \(1, 5, 26\), the model outputs "
                                       r"\(1, 4, 26\)"):
    speech_task.speech_loss(model, dict(batch, mfcc=np.zeros((1, 5, 26))), jax.random.key(0), False)


def test_ctc_training_decreases_loss():
  cfg = tiny_config(num_layers=1, dropout=0.0, attn_dropout=0.0, drop_path=0.0, max_shift=3)
  model = speech.create_speech_model(cfg)
  rng = np.random.default_rng(0)
  texts = ["ab", "ba c", "cab", "a"]
  labels = np.zeros((4, 4), np.int32)
  for i, text in enumerate(texts):
    ids = speech_units.text_to_ids(text)
    labels[i, :len(ids)] = ids
  batch = {"emg": rng.normal(size=(4, 64, 8)).astype(np.float32),
           "emg_len": np.array([64, 56, 64, 48]), "labels": labels,
           "label_len": np.array([len(speech_units.text_to_ids(t)) for t in texts])}
  optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, key):
    grad_fn = nnx.value_and_grad(lambda m: speech_task.speech_loss(m, batch, key, True),
                                 has_aux=True)
    (loss, _), grads = grad_fn(model)
    optimizer.update(model, grads)
    return loss

  losses = [float(step(model, optimizer, jax.random.key(i))) for i in range(20)]
  assert all(np.isfinite(losses))
  assert losses[-1] < 0.5 * losses[0], losses
  eval_loss, aux = speech_task.speech_loss(model, batch, jax.random.key(0), False)
  assert np.isfinite(float(eval_loss)) and float(aux["infeasible_fraction"]) == 0.0
  texts_out = speech_task.transcribe(forward(model, batch["emg"]), batch["emg_len"], beam=4)
  assert len(texts_out) == 4 and all(isinstance(t, str) for t in texts_out)


def test_transcribe_greedy_and_beam():
  path = [3, 3, 0, 37, 1, 0, 0, 2]  # "c|a b" -> "c ab"? no: c, |, a, b -> "c ab"
  logits = np.full((1, 8, 38), -10.0, np.float32)
  logits[0, np.arange(8), path] = 10.0
  assert speech_task.transcribe(logits, [64]) == ["c ab"]
  assert speech_task.transcribe(logits, [64], beam=4) == ["c ab"]
  assert speech_task.transcribe(logits, [24]) == ["c"]  # only 3 valid frames


# ----------------------------------------------------------------------------- pretrained


def _string_keys(tree):
  return {str(k): _string_keys(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def test_pretrained_blocks_load_by_name():
  tiny_cfg = decode_variant("test", rope_mode="released")
  tiny = create_model(tiny_cfg, seed=3)
  params = nnx.to_pure_dict(nnx.state(tiny, nnx.Param))
  model = speech.create_speech_model(
      speech.SpeechConfig.from_model_config(tiny_cfg, rope_mode="released"))
  skipped = speech.load_encoder_params(model, _string_keys(params))  # as read from orbax
  assert skipped == ["head", "mask_token", "patch_embed"]
  np.testing.assert_array_equal(model.blocks[1].attn.qkv.kernel[...],
                                params["blocks"][1]["attn"]["qkv"]["kernel"])
  np.testing.assert_array_equal(model.norm.scale[...], params["norm"]["scale"])
  x = jax.random.normal(jax.random.key(4), (2, 10, tiny_cfg.embed_dim))
  run_block = nnx.jit(lambda block, x: block(x, num_channels=1, deterministic=True, rngs=None))
  np.testing.assert_allclose(run_block(model.blocks[0], x), run_block(tiny.blocks[0], x),
                             atol=1e-6)
  deeper = speech.create_speech_model(tiny_config(num_layers=3))
  with pytest.raises(ValueError, match="pretrained encoder has 2 blocks, the speech model 3"):
    speech.load_encoder_params(deeper, params)
  wider = speech.create_speech_model(tiny_config(embed_dim=96))
  with pytest.raises(ValueError, match="has shape"):
    speech.load_encoder_params(wider, params)
