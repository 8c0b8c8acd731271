import jax
import numpy as np
import pytest

from ibrepro.train.shuffle import permutation


@pytest.mark.parametrize("n", [1, 2, 3, 17, 256, 3482, 5000])
def test_is_a_permutation(n):
    for seed in range(3):
        p = np.asarray(permutation(jax.random.key(seed), n))
        assert p.dtype == np.int32
        assert np.array_equal(np.sort(p), np.arange(n))


def test_keys_give_different_orders_and_positions_look_uniform():
    n, trials = 40, 2000
    keys = jax.random.split(jax.random.key(0), trials)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, n)))(keys))
    assert len({tuple(p) for p in perms}) == trials
    counts = np.zeros((n, n))
    np.add.at(counts, (np.arange(n)[None, :].repeat(trials, 0), perms), 1)
    expected = trials / n
    chi2 = ((counts - expected) ** 2 / expected).sum(axis=1)  # per position, n-1 dof
    assert np.median(chi2) < 2 * (n - 1)
    # first element is not biased towards its own index
    assert abs((perms[:, 0] == 0).mean() - 1 / n) < 0.03
