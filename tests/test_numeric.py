import math

import numpy as np

from graphsurgeon_cg.check.metrics import compare_outputs, flat_cosine, pixel_cosine, psnr
from graphsurgeon_cg.core.bounds import EXACT, Bound


def test_pixel_cosine_is_the_per_pixel_channel_cosine_averaged():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 5, 4))
    b = a + 0.3 * rng.standard_normal(a.shape)
    expected = []
    for n in range(2):
        for y in range(5):
            for x in range(4):
                u, v = a[n, :, y, x], b[n, :, y, x]
                expected.append(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    assert math.isclose(pixel_cosine(a, b), float(np.mean(expected)), rel_tol=1e-12)
    assert pixel_cosine(a, a) == 1.0
    assert pixel_cosine(a, -a) == -1.0
    # identical tensors score exactly 1, all-zero ones included (torch would give 0 there)
    assert pixel_cosine(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 2))) == 1.0
    # a cosine over one channel is only a sign: undefined for one-channel outputs
    assert pixel_cosine(a[:, :1], b[:, :1]) is None


def test_flat_cosine_and_psnr():
    a = np.array([1.0, -1.0, 0.5, 0.0])
    assert flat_cosine(a, 2 * a) == 1.0
    assert psnr(a, a) is None
    assert math.isclose(psnr(a, a + 0.1), 10 * math.log10(2.0**2 / 0.01))  # range: the reference's peak-to-peak, 2


def test_bounds_chain_and_violations_say_what_would_pass():
    fp16 = Bound(max_abs=2.0**-24, rel=2.0**-11)
    chained = Bound.chain([EXACT, fp16, Bound(min_cos=0.9)])
    assert chained.max_abs is None
    assert math.isclose(chained.min_cos, 0.9)
    assert Bound.chain([EXACT, fp16]).max_abs == 1e-5 + 2.0**-24
    ref = [{"y": np.ones((1, 3, 2, 2), np.float32)}]
    new = [{"y": np.full((1, 3, 2, 2), 1.001, np.float32)}]
    result = compare_outputs(ref, new, EXACT)
    assert not result.ok
    assert "would pass" in result.violations[0]
    assert compare_outputs(ref, new, Bound(max_abs=2e-3)).ok
