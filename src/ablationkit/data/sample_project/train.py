"""DigitNet: the tiny, real training script of AblationKit's sample project.

Trains the method of ``paper.md`` (standardisation, PCA, Gaussian noise augmentation, an
RBF-kernel SVM) on scikit-learn's bundled handwritten digits, so it needs
no download and runs in a few seconds on one CPU core. Configured like a Hydra project,
without Hydra: ``conf/config.yaml`` plus dotted ``key=value`` overrides on the command line.

    python train.py                                  # the paper's setting
    python train.py augment.noise=0 model.C=0.1      # an ablation
    python train.py seed=2 --metrics-file m.json     # also write the metrics to a file

The metrics are printed as the last line of stdout, one JSON object (what ``ablationkit
execute`` reads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
# One BLAS thread: the matrices are tiny, and on a busy machine OpenBLAS threads spinning for
# a core made one fit take 10 s instead of 0.1 s (measured). Runs go in parallel instead.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def load_config(path: Path, overrides: list[str]) -> dict[str, Any]:
    """The YAML config with ``a.b=value`` overrides applied; values are read as YAML
    (``true``, ``0.1``, ``null``), and an unknown key is an error, as in Hydra."""
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"train.py: override {item!r} is not key=value")
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise SystemExit(f"train.py: unknown config key {key!r}")
        if not isinstance(node, dict) or leaf not in node:
            raise SystemExit(f"train.py: unknown config key {key!r}")
        node[leaf] = yaml.safe_load(text) if text else None
    return config


def build_model(config: dict[str, Any]) -> Any:
    """The classifier the config names (the paper's is the RBF-kernel SVM)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC, LinearSVC

    model, seed = config["model"], config["seed"]
    name = model["name"]
    if name == "logistic_regression":
        return LogisticRegression(C=model["C"], max_iter=model["max_iter"], random_state=seed)
    if name == "linear_svm":
        return LinearSVC(C=model["C"], max_iter=model["max_iter"], random_state=seed)
    if name == "rbf_svm":
        return SVC(C=model["C"], kernel="rbf", random_state=seed)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=seed)
    raise SystemExit(f"train.py: unknown model.name {name!r}")


def train(config: dict[str, Any]) -> dict[str, Any]:
    """Fit on the training split (with its noisy copies), score on the held-out split."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    seed = int(config["seed"])
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=config["data"]["test_size"], random_state=seed, stratify=y
    )
    noise, copies = float(config["augment"]["noise"]), int(config["augment"]["copies"])
    if noise > 0 and copies > 0:
        rng = np.random.default_rng(seed)
        noisy = [x_train + rng.normal(0.0, noise, x_train.shape) for _ in range(copies)]
        x_train = np.vstack([x_train, *noisy])
        y_train = np.concatenate([y_train] * (copies + 1))
    steps: list[Any] = []
    if config["preprocessing"]["scale"]:
        steps.append(StandardScaler())
    components = int(config["features"]["pca_components"] or 0)
    if components > 0:
        steps.append(PCA(n_components=components, random_state=seed))
    steps.append(build_model(config))
    pipeline = make_pipeline(*steps)
    start = time.perf_counter()
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - start
    predicted = pipeline.predict(x_test)
    return {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
        "macro_f1": round(float(f1_score(y_test, predicted, average="macro")), 4),
        "train_size": len(y_train),
        "fit_seconds": round(fit_seconds, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train DigitNet (see paper.md).")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    parser.add_argument("--config", default=str(HERE / "conf" / "config.yaml"))
    parser.add_argument("--metrics-file", help="also write the metrics JSON here")
    args = parser.parse_args(argv)
    config = load_config(Path(args.config), args.overrides)
    import warnings

    warnings.filterwarnings("ignore")  # convergence chatter would bury the metrics line
    metrics = train(config)
    line = json.dumps(metrics, sort_keys=True)
    if args.metrics_file:
        Path(args.metrics_file).write_text(line + "\n", encoding="utf-8")
    print(f"trained {config['model']['name']} on {metrics['train_size']} examples")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
