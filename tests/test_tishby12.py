import itertools

import numpy as np

from ibrepro.analysis.estimators import Labels
from ibrepro.data.labels import label_entropy
from ibrepro.data.tishby12 import ICOSAHEDRON, tishby12_inputs, tishby12_labels, tishby12_p_y1, tishby12_score


def _symmetry_permutations():
    """All vertex permutations induced by orthogonal maps of the icosahedron onto itself."""
    v = ICOSAHEDRON
    dots = v @ v.T
    adjacent = [(i, j) for i, j in itertools.permutations(range(12), 2) if abs(dots[i, j] - dots[0, 1]) < 1e-9]
    assert abs(dots[0, 1] - 0.4472135955) < 1e-6  # v0, v1 are neighbours
    source = np.stack([v[0], v[1], np.cross(v[0], v[1])], axis=1)
    perms = set()
    for i, j in adjacent:
        for sign in (1, -1):
            target = np.stack([v[i], v[j], sign * np.cross(v[i], v[j])], axis=1)
            a = target @ np.linalg.inv(source)
            image = v @ a.T
            match = np.abs(image[:, None, :] - v[None, :, :]).sum(-1) < 1e-9
            if (match.sum(1) == 1).all():
                perms.add(tuple(match.argmax(1)))
    return [np.array(p) for p in perms]


def test_canonical_order():
    x = tishby12_inputs()
    assert x.shape == (4096, 12)
    assert (x[0] == 0).all() and (x[-1] == 1).all()
    assert (x[1] == np.eye(12)[-1]).all()  # row 1 = 0...01: the last column is the least significant bit
    weights = 2 ** np.arange(11, -1, -1)
    assert (x @ weights == np.arange(4096)).all()


def test_label_counts_and_entropy():
    y = tishby12_labels()
    assert y.sum() == 2118
    p1 = y.mean()
    assert abs(p1 - 0.51709) < 1e-5
    assert abs(label_entropy(y) - 0.99916) < 1e-5
    assert label_entropy(y, np.eye(2)[y]) == label_entropy(y) == Labels.from_labels(y).entropy  # one definition
    assert label_entropy(y, np.full((4096, 2), 0.5)) == 1.0  # soft: p(y) is the mean of p(y|x)


def test_threshold_gap():
    score = tishby12_score(tishby12_inputs())
    y = tishby12_labels()
    assert score[y == 0].max() < 7.5629 and score[y == 1].min() > 7.7013


def test_invariant_under_all_120_symmetries():
    perms = _symmetry_permutations()
    assert len(perms) == 120
    x, y = tishby12_inputs(), tishby12_labels()
    weights = 2 ** np.arange(11, -1, -1)
    for perm in perms:
        moved = (x[:, perm] @ weights).astype(int)
        assert (y[moved] == y).all()


def test_noisy_variant():
    p = tishby12_p_y1(gamma=2.0)
    score = tishby12_score(tishby12_inputs())
    assert ((p > 0) & (p < 1)).all()
    order = np.argsort(score)
    assert (np.diff(p[order]) >= 0).all()
    drawn = tishby12_labels(gamma=2.0, seed=1)
    assert set(np.unique(drawn)) == {0, 1}
    assert not (drawn == tishby12_labels()).all()
    assert abs(drawn.mean() - p.mean()) < 0.03
