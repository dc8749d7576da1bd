"""FID: our exact small-matrix trace against the scipy.linalg.sqrtm baseline, same features.

Features: 300 "real" x 7,038 "generated" rows in 2048-d (the competition's sizes), random but
correlated (Gaussian rows times a fixed random mixing matrix, through a ReLU like Inception's
pool features). Baseline = Kaggle's recipe: ``np.cov`` of each set, ``scipy.linalg.sqrtm`` of
their product, real part of its trace. Prints both times, their ratio and the relative
difference of the two FID values. Run: ``python benchmarks/bench_metrics.py [--repeats N]``.
"""

import argparse
import sys
import time

import numpy as np
import scipy
import scipy.linalg

from monet_keras.evaluate.metrics import fid, trace_sqrt_product


def correlated_features(rng, n, mixing, shift):
    return np.maximum(rng.standard_normal((n, mixing.shape[0])) @ mixing + shift, 0.0)


def baseline_trace(cov_1, cov_2):
    root = scipy.linalg.sqrtm(cov_1 @ cov_2)
    return float(np.trace(root).real)


def baseline_fid(features_1, features_2):
    mu_1, mu_2 = features_1.mean(axis=0), features_2.mean(axis=0)
    cov_1, cov_2 = np.cov(features_1, rowvar=False), np.cov(features_2, rowvar=False)
    shift = mu_1 - mu_2
    return float(shift @ shift + np.trace(cov_1) + np.trace(cov_2) - 2.0 * baseline_trace(cov_1, cov_2))


def best_time(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=300)
    parser.add_argument("--generated", type=int, default=7038)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="ours is timed best-of-N; sqrtm runs once")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    mixing = rng.standard_normal((args.dim, args.dim)) / np.sqrt(args.dim)
    real = correlated_features(rng, args.real, mixing, 0.0)
    generated = correlated_features(rng, args.generated, mixing, 0.1)
    print(f"features: {args.real} real x {args.generated} generated, {args.dim}-d, float64; "
          f"numpy {np.__version__}, scipy {scipy.__version__}")

    ours_time, ours_value = best_time(lambda: fid(generated, real), args.repeats)
    base_time, base_value = best_time(lambda: baseline_fid(generated, real), 1)
    relative = abs(ours_value - base_value) / abs(base_value)
    print(f"FID   ours {ours_value:.9f} in {ours_time:.3f} s | "
          f"np.cov + sqrtm {base_value:.9f} in {base_time:.3f} s")
    print(f"FID   speed-up {base_time / ours_time:.1f}x, relative difference {relative:.2e}")

    cov_1, cov_2 = np.cov(generated, rowvar=False), np.cov(real, rowvar=False)
    trace_time, trace_value = best_time(lambda: trace_sqrt_product(generated, real), args.repeats)
    sqrtm_time, sqrtm_value = best_time(lambda: baseline_trace(cov_1, cov_2), 1)
    print(f"trace ours {trace_time:.3f} s from features | sqrtm {sqrtm_time:.3f} s from ready covariances: "
          f"{sqrtm_time / trace_time:.1f}x, "
          f"relative difference {abs(trace_value - sqrtm_value) / sqrtm_value:.2e}")

    ok = base_time / ours_time >= 5 and relative <= 1e-6
    print("target (>= 5x faster, same FID to 1e-6):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
