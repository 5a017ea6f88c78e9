"""Executable verdicts of the claims ledger (spec/ledger.toml, field `witness`; issue 24).

Each witness runs the behaviour a `wrong` claim asserts through the float64 reference (dropnorm/reference/) and
then the named clause's own check (dropnorm.suite.checks, the same helper the property tests call), and returns
the ClauseViolation that check raises, or None where it accepts the behaviour. test_ledger_is_valid
(tests/test_spec_index.py) requires a ClauseViolation on one of the entry's `rejected_by` conditions: a
clause that accepts what the claim says cannot make it wrong.
"""
from __future__ import annotations

import numpy as np

from dropnorm import reference as ref
from dropnorm.suite import checks as ph
from dropnorm.spec import stats
from dropnorm.reference.dropout import dropout_forward, sample_mask


def _rejection(run):
    """run() under a fresh check context: the ClauseViolation it raises, else None."""
    ph.set_context(ph.Context())
    try:
        run()
    except ph.ClauseViolation as e:
        return e
    finally:
        ph.set_context(ph.Context())
    return None


def selected_subnetwork_at_prediction():
    """L-000-02: "train countless models ... then select among them": at prediction time one selected
    thinned network, i.e. one fixed mask (with its inverted scale) applied in eval mode. DO-EVAL-01's
    identity check rejects it (eval returns x)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, size=(8, 16))
    p = 0.5
    selected = sample_mask(np.random.default_rng(1), x.shape, p)  # the chosen sub-network
    y_eval = dropout_forward(x, selected, p, training=True)       # what the selected model predicts
    return _rejection(lambda: ph.assert_equal(y_eval, x, "DO-EVAL-01", "identity",
                                              "the selected sub-network at prediction time"))


def moving_average_argument_unused():
    """L-002-18: the post's batch_normalization(x, gamma, beta, moving_average, epsilon) takes
    moving_average = 0.9 but keeps no running statistics: after a training call the running mean is
    still its initial 0. BN-TRAIN-02's running-mean check (rm' = (1 - m) rm + m mu, here in the post's
    reading, m = 1 - 0.9 on the new batch; any m > 0 moves rm) rejects it. The post's code, verbatim
    apart from the seed: x = np.random.rand(10, 5)."""
    x = np.random.default_rng(0).random((10, 5))

    def batch_normalization(x, gamma, beta, moving_average, epsilon):  # doc 002, section 4.2
        batch_mean = np.mean(x)
        batch_var = np.var(x, ddof=1)
        normalized_x = (x - batch_mean) / np.sqrt(batch_var + epsilon)
        return gamma * normalized_x + beta

    batch_normalization(x, np.ones(5), np.zeros(5), 0.9, 0.1)
    running_mean_after = np.zeros(5)  # the function keeps none: whatever the caller had is unchanged
    expected, _, _ = ref.running_update(np.zeros(5), np.ones(5), 0, x, 1 - 0.9)
    return _rejection(lambda: ph.assert_close(running_mean_after, expected, 1e-12, "BN-TRAIN-02", "running-mean",
                                              "the post's batch_normalization after one training call"))


def _keep_rate_rejection(kept_probability: float, q: float, what: str):
    """A layer that keeps each element with probability kept_probability, judged by DO-TRAIN-02's exact
    binomial test against the keep probability q it must have (n = stats.keep_rate_n(q), as the test)."""
    n = stats.keep_rate_n(q)
    rng = np.random.default_rng(2)
    kept = int((rng.random(n) < kept_probability).sum())
    return _rejection(lambda: ph.assert_binomial(stats.binomial(kept, n, q), "DO-TRAIN-02", "keep-rate", what))


def keep_rate_one_half():
    """L-003-17: "r is 1 or 0 with equal probabilities" whatever the dropout probability: at a keep
    probability of 0.8 (drop 0.2) the claimed r keeps half the units; DO-TRAIN-02 rejects the rate 1/2."""
    return _keep_rate_rejection(0.5, 0.8, "r = 1 or 0 with equal probabilities, keep probability 0.8")


def nonzero_rate_inverse_p():
    """L-003-18: "the rate at which y is nonzero equals 1/p" (p the keep probability, as in the post): 1/p
    > 1 for every p < 1, so the nearest realisable behaviour keeps every unit (rate min(1, 1/p) = 1); at
    p = 0.5 DO-TRAIN-02 rejects it against the keep rate 0.5."""
    return _keep_rate_rejection(min(1.0, 1 / 0.5), 0.5, "nonzero rate 1/p, keep probability 0.5")


def _eps_point_one_rejected_by_api():
    """Not a ledger witness: the verdict the ledger held before spec 0.2.0 for L-002-07 ("eps = 0.1" wrong
    through BN-API-02). BN-API-02 rejects eps <= 0 and non-finite eps; 0.1 passes its check, so this returns
    None, and tests/test_spec_index.py shows that the ledger test refuses such an entry."""
    eps = 0.1
    return _rejection(lambda: ph.check(np.isfinite(eps) and eps > 0, "BN-API-02", "non-positive",
                                       f"eps = {eps} accepted"))
