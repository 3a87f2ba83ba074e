"""The peers' half of `cargo bench -p tributary-models --bench models`: scikit-learn trains and scores
on the same customer Parquet file, statsforecast forecasts the same series CSV; prints JSON timings.

    python bench_peer.py CUSTOMERS_PARQUET SERIES_CSV SEASON HORIZON MAX_SERIES
"""

import json
import sys
import time

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main():
    customers, series, season, horizon, max_series = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    out = {}

    started = time.perf_counter()
    frame = pl.read_parquet(customers)
    # The same encoding as ours: text one-hot, numbers as they are (gaps filled by the median and
    # flagged for the logistic regression; the booster takes them as they are).
    x = frame.drop("customer_key", "churned").to_dummies(columns=["segment", "region"]).to_numpy().astype(float)
    y = frame["churned"].to_numpy()
    index = np.arange(len(y))
    train, test = index % 5 < 3, index % 5 == 4
    out["read_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    logistic = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True), StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)
    ).fit(x[train], y[train])
    out["logistic_train_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    p = logistic.predict_proba(x)[:, 1]
    out["logistic_score_seconds"] = time.perf_counter() - started
    out["logistic_test_auc"] = roc_auc_score(y[test], p[test])

    started = time.perf_counter()
    boosting = HistGradientBoostingClassifier(random_state=0).fit(x[train], y[train])
    out["boosting_train_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    p = boosting.predict_proba(x)[:, 1]
    out["boosting_score_seconds"] = time.perf_counter() - started
    out["boosting_test_auc"] = roc_auc_score(y[test], p[test])

    from statsforecast.models import AutoETS

    data = pl.read_csv(series)
    groups = [g.sort("week")["units"].to_numpy().astype(float) for _, g in data.group_by("series", maintain_order=True)]
    groups = groups[:max_series]
    started = time.perf_counter()
    for values in groups:
        AutoETS(season_length=season).forecast(y=values, h=horizon)
    out["autoets_series"] = len(groups)
    out["autoets_seconds"] = time.perf_counter() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main()
