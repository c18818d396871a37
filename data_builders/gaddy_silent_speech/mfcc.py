"""MFCC frames from a mono waveform with numpy/scipy (the Gaddy builder's audio target).

Pre-emphasis (0.97) -> frames of 25 ms every 10 ms, Hann window -> power spectrum (FFT size the
next power of two) -> 40 triangular mel filters (HTK mel scale, 0 Hz to Nyquist) -> natural log
(floored at 1e-10) -> orthonormal DCT-II, first 26 coefficients (c0 included).
At 10 ms per frame, frame f covers EMG samples [10 f, 10 f + 25) of a 1 kHz recording.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

FRAME_S = 0.025
HOP_S = 0.010
NUM_MELS = 40
NUM_CEPSTRA = 26
PRE_EMPHASIS = 0.97


def hz_to_mel(hz):
  return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel):
  return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(rate_hz: float, n_fft: int, num_mels: int = NUM_MELS) -> np.ndarray:
  """Returns [num_mels, n_fft // 2 + 1] triangular filters evenly spaced on the mel scale."""
  edges_hz = mel_to_hz(np.linspace(0.0, hz_to_mel(rate_hz / 2), num_mels + 2))
  bins_hz = np.fft.rfftfreq(n_fft, 1.0 / rate_hz)
  low, centre, high = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
  rising = (bins_hz - low) / (centre - low)
  falling = (high - bins_hz) / (high - centre)
  return np.clip(np.minimum(rising, falling), 0.0, None)


def num_frames(num_samples: int, rate_hz: float) -> int:
  """Returns how many full 25 ms frames (10 ms apart) fit in `num_samples`."""
  frame, hop = round(FRAME_S * rate_hz), round(HOP_S * rate_hz)
  return 0 if num_samples < frame else 1 + (num_samples - frame) // hop


def mfcc(audio: np.ndarray, rate_hz: float) -> np.ndarray:
  """Returns float32 [frames, 26] MFCCs of a mono waveform [T] sampled at `rate_hz`.

  Raises:
    ValueError: the waveform is not 1-D or shorter than one frame.
  """
  audio = np.asarray(audio, dtype=np.float64)
  frames = num_frames(audio.shape[-1], rate_hz) if audio.ndim == 1 else 0
  if frames == 0:
    raise ValueError(f"audio of shape {audio.shape} at {rate_hz} Hz holds no 25 ms frame")
  frame, hop = round(FRAME_S * rate_hz), round(HOP_S * rate_hz)
  emphasised = np.concatenate([audio[:1], audio[1:] - PRE_EMPHASIS * audio[:-1]])
  index = np.arange(frame)[None, :] + hop * np.arange(frames)[:, None]
  n_fft = 1 << (frame - 1).bit_length()
  spectrum = np.fft.rfft(emphasised[index] * np.hanning(frame), n=n_fft, axis=-1)
  energies = (np.abs(spectrum) ** 2) @ mel_filterbank(rate_hz, n_fft).T
  cepstra = scipy.fft.dct(np.log(np.maximum(energies, 1e-10)), type=2, norm="ortho", axis=-1)
  return cepstra[:, :NUM_CEPSTRA].astype(np.float32)
