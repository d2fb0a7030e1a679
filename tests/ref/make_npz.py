# Writes the .npz fixtures read by tests/test_safetensors.c: the same arrays stored
# (np.savez) and deflated (np.savez_compressed). Run: /usr/bin/python3 tests/ref/make_npz.py
import os
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
q = "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel"
arrays = {
    # value = 0.5 * i - 3 for flat index i
    q: (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(4, 2, 3),
    # the same name under an optimizer-state prefix, as some checkpoints carry
    "opt/target/" + q: (np.arange(24, dtype=np.float32) * -0.25 + 1).reshape(4, 2, 3),
    "embedding/bias": np.array([1.5, -2.0, 0.0, 3.25, 1e-3], dtype=np.float32),
    "f64": np.array([[1.0 / 3.0, -2.5], [1e-40, 1e300]], dtype=np.float64),
    "f16": np.array([1.0, -0.5, 6.0e-8, 65504.0], dtype=np.float16),
    "i64": np.array([-7, 0, 1 << 40], dtype=np.int64),
    "big_endian": np.array([1.25, -8.0, 3.0e10], dtype=">f4"),
    "scalar": np.float32(42.0),
}
np.savez(os.path.join(here, "small.npz"), **arrays)
np.savez_compressed(os.path.join(here, "small_compressed.npz"), **arrays)
