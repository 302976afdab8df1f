"""A workload that lives outside Ephemera: ridge classification of scikit-learn's bundled
digits, with its own parameters file. Run it with `workload.source: examples/train-digits`
and `workload.entry: train:main` (see examples/train-digits/ephemera.yaml)."""

from __future__ import annotations

import json
from pathlib import Path


def main(ctx) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import train_test_split

    params = {**json.loads((Path(__file__).parent / "params.json").read_text()), **ctx.params}
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=params["test_size"], random_state=params["seed"])
    model = RidgeClassifier(alpha=params["alpha"]).fit(X_train, y_train)
    accuracy = float(model.score(X_test, y_test))
    ctx.put_json("accuracy.json", {"accuracy": accuracy, "params": params, "code": __file__})
    return {"accuracy": round(accuracy, 4), "alpha": params["alpha"]}
