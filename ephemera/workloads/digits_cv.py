"""k-fold cross-validation of a digit classifier, fanned out with FunctionExecutor.map.

The dataset is scikit-learn's bundled 8x8 digits (no download). Each fold trains and
scores in its own task; the driver writes ``metrics.json`` (per-fold and mean
accuracy) and ``model.pkl`` (a model trained on all the data) under the run's
output prefix. On a VM with a CUDA GPU and PyTorch, the model is a softmax regression
trained on the GPU; otherwise scikit-learn's logistic regression on the CPU.

Parameters (``workload.params``): ``folds`` (2-20, default 5), ``C`` (inverse
regularisation, default 1.0), ``max_iter`` (default 200), ``seed`` (default 0),
``fail`` (true to raise on purpose, for testing the failure path).
"""

from __future__ import annotations

import pickle
import time

import numpy as np

from ephemera.errors import ParamError


def detect_device() -> str:
    try:
        import torch  # optional: only present on GPU images
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _params(raw: dict) -> dict:
    known = {"folds": 5, "C": 1.0, "max_iter": 200, "seed": 0, "fail": False}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ParamError(f"workload.params.{unknown[0]}", "unknown parameter", f"known: {', '.join(known)}")
    p = {**known, **raw}
    if isinstance(p["folds"], bool) or not isinstance(p["folds"], int) or not 2 <= p["folds"] <= 20:
        raise ParamError("workload.params.folds", f"expected an integer from 2 to 20, got {p['folds']!r}", "e.g. folds: 5")
    if not isinstance(p["C"], (int, float)) or p["C"] <= 0:
        raise ParamError("workload.params.C", f"expected a positive number, got {p['C']!r}", "e.g. C: 1.0")
    if isinstance(p["max_iter"], bool) or not isinstance(p["max_iter"], int) or p["max_iter"] < 1:
        raise ParamError("workload.params.max_iter", f"expected a positive integer, got {p['max_iter']!r}", "e.g. max_iter: 200")
    return p


class TorchSoftmax:
    """Multinomial logistic regression on the GPU (used only when CUDA is present)."""

    def __init__(self, C: float, max_iter: int, seed: int):
        self.C, self.max_iter, self.seed = C, max_iter, seed

    def fit(self, X, y):
        import torch

        torch.manual_seed(self.seed)
        X_t = torch.tensor(X, dtype=torch.float32, device="cuda")
        y_t = torch.tensor(y, dtype=torch.long, device="cuda")
        self.classes_ = np.unique(y)
        self.linear = torch.nn.Linear(X.shape[1], len(self.classes_)).cuda()
        opt = torch.optim.LBFGS(self.linear.parameters(), max_iter=self.max_iter)

        def closure():
            opt.zero_grad()
            loss = (
                torch.nn.functional.cross_entropy(self.linear(X_t), y_t)
                + (0.5 / (self.C * len(y))) * self.linear.weight.pow(2).sum()
            )
            loss.backward()
            return loss

        opt.step(closure)
        return self

    def predict(self, X):
        import torch

        with torch.no_grad():
            logits = self.linear(torch.tensor(X, dtype=torch.float32, device="cuda"))
        return self.classes_[logits.argmax(1).cpu().numpy()]


def make_model(C: float, max_iter: int, seed: int, device: str):
    if device == "cuda":
        return TorchSoftmax(C, max_iter, seed)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))


def _load():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data, data.target


def train_fold(fold: int, folds: int, C: float, max_iter: int, seed: int) -> dict:
    """One task: train on all folds but ``fold`` and score on it."""
    from sklearn.model_selection import StratifiedKFold

    started = time.time()
    X, y = _load()
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y))
    train_idx, test_idx = splits[fold]
    device = detect_device()
    model = make_model(C, max_iter, seed, device).fit(X[train_idx], y[train_idx])
    accuracy = float((model.predict(X[test_idx]) == y[test_idx]).mean())
    return {
        "fold": fold,
        "accuracy": round(accuracy, 5),
        "train_size": len(train_idx),
        "test_size": len(test_idx),
        "device": device,
        "seconds": round(time.time() - started, 3),
    }


def main(ctx) -> dict:
    """The workload entry: ``workload.entry: ephemera.workloads.digits_cv:main``."""
    from lithops_bridge import FunctionExecutor

    p = _params(ctx.params)
    if p["fail"]:
        raise RuntimeError("failing on purpose (workload.params.fail is true)")
    ctx.log.info("digits CV: %d folds, C=%s, device %s", p["folds"], p["C"], detect_device())
    iterdata = [
        {"fold": i, "folds": p["folds"], "C": p["C"], "max_iter": p["max_iter"], "seed": p["seed"]} for i in range(p["folds"])
    ]
    with FunctionExecutor() as fexec:
        futures = fexec.map(train_fold, iterdata)
        per_fold = fexec.get_result(futures)
    accuracies = [f["accuracy"] for f in per_fold]
    X, y = _load()
    device = detect_device()
    model = make_model(p["C"], p["max_iter"], p["seed"], device).fit(X, y)
    metrics = {
        "dataset": "sklearn digits",
        "n_samples": int(len(y)),
        "folds": per_fold,
        "mean_accuracy": round(float(np.mean(accuracies)), 5),
        "std_accuracy": round(float(np.std(accuracies)), 5),
        "device": device,
        "params": p,
    }
    ctx.put_json("metrics.json", metrics)
    if device == "cpu":  # GPU tensors are moved to the CPU before pickling
        ctx.put_output("model.pkl", pickle.dumps(model))
    else:
        ctx.put_output(
            "model.pkl",
            pickle.dumps(
                {
                    "weight": model.linear.weight.detach().cpu().numpy(),
                    "bias": model.linear.bias.detach().cpu().numpy(),
                    "classes": model.classes_,
                }
            ),
        )
    ctx.log.info("digits CV: mean accuracy %.4f", metrics["mean_accuracy"])
    return {"mean_accuracy": metrics["mean_accuracy"], "folds": len(per_fold), "device": device}
