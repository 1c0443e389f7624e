"""MIG, the sampled form of Chen et al. 2018 (docs/metrics.md, metric ``mig_sampled``).

Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in
Variational Autoencoders" (NeurIPS 2018), as their released code computes it
(``disentanglement_metrics.py``: ``estimate_entropies``,
``mutual_info_metric_shapes``), which the DynamicVAE authors reuse
(``2D-sprites/MIG_metric.py``):

* one sample z_n ~ q(z|x_n) = N(μ_n, σ_n²) per image;
* H(z_j) ≈ -mean_s log((1/N) Σ_n q(z_j^s | x_n)) over a random subset of S
  of those samples, with the mixture over all N images;
* H(z_j | v_k) = Σ_v p(v) H(z_j | v_k = v), each term the same estimate with
  samples (min(S, N_v) of them) and mixture both restricted to the N_v images
  where factor k = v;
* I_jk = max(H(z_j) - H(z_j | v_k), 0), normalised by log |v_k|; the gap of
  the two largest over latents per factor, averaged over factors.

The values are weighted by their frequency p(v); on a complete factor grid
(dSprites) that equals the authors' plain average over values. Every
log-sum-exp runs over (sample chunk × component chunk) blocks, so memory is
bounded whatever N is, and on CPU the estimates run in parallel, one per core
(:mod:`.parallel`). The cost is S · N · L density evaluations per factor plus
one for H(z_j): 4.4e11 for dSprites at S = 10,000, tens of minutes on two CPU
cores (``benchmarks/bench_metrics.py``), far less on a GPU (``device``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from disbench.errors import DisbenchError

from .inputs import LOGVAR_LIMIT, check_codes, check_factors, check_positive_int, check_same_shape, factor_label
from .information import check_informative, gap_result
from .parallel import map_in_order

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# (samples, components) per block: cache-sized for one CPU core; large enough on a
# GPU that kernel launches do not dominate (L = 10: ~0.3 GB per float64 buffer).
_CPU_BLOCK = (64, 1024)
_GPU_BLOCK = (512, 8192)


def mixture_entropy(samples: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
                    sample_chunk: int = 64, component_chunk: int = 1024) -> np.ndarray:
    """-mean_s log((1/n) Σ_n N(samples[s, j]; mu[n, j], σ[n, j])) for each latent j.

    ``samples``: (S, L); ``mu``, ``logvar``: (n, L); one floating dtype and
    device. A running log-sum-exp over component chunks keeps it stable and
    O(L · sample_chunk · component_chunk) in memory.
    """
    num_components = mu.shape[0]
    logvar = logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)
    # Latent-major, components last: every block op runs along contiguous memory.
    samples_t = samples.T.contiguous()
    mu_t = mu.T.contiguous()
    inv_sigma_t = torch.exp(-0.5 * logvar).T.contiguous()
    log_peak_t = (-0.5 * logvar - _HALF_LOG_2PI).T.contiguous()

    total = torch.zeros(mu.shape[1], dtype=mu.dtype, device=mu.device)
    for s0 in range(0, samples_t.shape[1], sample_chunk):
        z = samples_t[:, s0:s0 + sample_chunk, None]
        log_sum = torch.full(z.shape[:2], -math.inf, dtype=mu.dtype, device=mu.device)
        for n0 in range(0, num_components, component_chunk):
            block = slice(n0, n0 + component_chunk)
            # (z - μ)/σ directly, not an expanded quadratic, which would cancel badly for small σ.
            standardized = torch.sub(z, mu_t[:, None, block]).mul_(inv_sigma_t[:, None, block])
            log_density = torch.addcmul(log_peak_t[:, None, block], standardized, standardized, value=-0.5)
            log_sum = torch.logaddexp(log_sum, torch.logsumexp(log_density, dim=2))
        total += log_sum.sum(dim=1)
    mean_log_mixture = total / samples_t.shape[1] - math.log(num_components)
    return (-mean_log_mixture).cpu().numpy()


def _entropy_task(members: np.ndarray | None, num_entropy_samples: int, rng: np.random.Generator,
                  num_images: int) -> tuple[np.ndarray | None, np.ndarray]:
    """The images ``members`` (all when None) and the S of them drawn as samples."""
    size = num_images if members is None else len(members)
    chosen = np.sort(rng.permutation(size)[:num_entropy_samples])
    return members, chosen


def mig_sampled_score(mu, logvar, factors, factor_sizes, num_entropy_samples: int = 10000, seed: int = 0, *,
                      factor_names: Sequence[str] | None = None,
                      device: str | torch.device | None = None) -> dict:
    """Sampled MIG of the posteriors N(``mu``, exp(``logvar``)) (N, L) against ``factors`` (N, K).

    ``factor_sizes[k]`` is |v_k|, the number of values factor k can take (its
    normaliser is log |v_k|). Returns ``{"score", "per_factor": [K], "mi": (L,
    K) array of clamped I in nats, "entropy": [K] log |v_k|,
    "marginal_entropy": [L], "conditional_entropy": (L, K) array}``.
    Deterministic for a given ``seed`` (which draws the z samples and the
    subsets); ``device`` (default CPU) runs the float64 log-sum-exps.
    """
    num_entropy_samples = check_positive_int(num_entropy_samples, "num_entropy_samples")
    mu = check_codes(mu, "mu")
    logvar = check_codes(logvar, "logvar")
    check_same_shape(mu, logvar, ("mu", "logvar"))
    factors = check_factors(factors, num_samples=mu.shape[0], factor_names=factor_names)
    sizes = _check_factor_sizes(factor_sizes, factors, factor_names)
    normaliser = np.log(sizes.astype(np.float64))
    check_informative(normaliser, factor_names, "has a single possible value")

    rng = np.random.default_rng(seed)
    mu64 = mu.astype(np.float64)
    logvar64 = np.clip(logvar.astype(np.float64), -LOGVAR_LIMIT, LOGVAR_LIMIT)
    z = mu64 + np.exp(0.5 * logvar64) * rng.standard_normal(mu.shape)

    device = torch.device(device or "cpu")
    z_t, mu_t, logvar_t = (torch.from_numpy(a).to(device) for a in (z, mu64, logvar64))

    def subset_entropy(task) -> np.ndarray:
        members, chosen = task
        if members is None:
            z_m, mu_m, logvar_m = z_t, mu_t, logvar_t
        else:
            index = torch.from_numpy(members).to(device)
            z_m, mu_m, logvar_m = z_t[index], mu_t[index], logvar_t[index]
        sample_chunk, component_chunk = _CPU_BLOCK if device.type == "cpu" else _GPU_BLOCK
        return mixture_entropy(z_m[torch.from_numpy(chosen).to(device)], mu_m, logvar_m,
                               sample_chunk=sample_chunk, component_chunk=component_chunk)

    # Every subset is drawn here, in a fixed order, before any work runs in parallel:
    # H(z) first, then each value of each factor.
    num_samples = mu.shape[0]
    tasks, weights = [_entropy_task(None, num_entropy_samples, rng, num_samples)], []
    for k in range(factors.shape[1]):
        # Grouping by sort: members of each value without a pass over N per value.
        order = np.argsort(factors[:, k], kind="stable")
        counts = np.bincount(factors[:, k], minlength=sizes[k])
        for members in np.split(order, np.cumsum(counts)[:-1]):
            if len(members):
                tasks.append(_entropy_task(members, num_entropy_samples, rng, num_samples))
                weights.append((k, len(members) / num_samples))

    marginal, *value_entropies = map_in_order(subset_entropy, tasks, device)
    conditional = np.zeros((mu.shape[1], factors.shape[1]))
    for (k, weight), entropy in zip(weights, value_entropies):
        conditional[:, k] += weight * entropy

    mi = np.maximum(marginal[:, None] - conditional, 0.0)
    return gap_result(mi, normaliser, marginal_entropy=[float(h) for h in marginal],
                      conditional_entropy=conditional)


def _check_factor_sizes(factor_sizes, factors: np.ndarray, factor_names) -> np.ndarray:
    sizes = np.asarray(factor_sizes)
    if sizes.shape != (factors.shape[1],) or not np.issubdtype(sizes.dtype, np.integer):
        raise DisbenchError(
            f"factor_sizes must be {factors.shape[1]} integers (one per factor column), got {list(np.ravel(sizes))}"
        )
    for k in range(factors.shape[1]):
        if factors.shape[0] and factors[:, k].max() >= sizes[k]:
            raise DisbenchError(
                f"{factor_label(k, factor_names)} has value {int(factors[:, k].max())}, "
                f"outside its {int(sizes[k])} values"
            )
    return sizes.astype(np.int64)
