"""Test data: a demo (binary or a task's) in a data folder with its fairwatch.toml, and the real files of the task
audits with a model trained here.

The real files (../shared/data, see its README) carry labels only; each test trains the same small model on
them so every test of a task reads the same predictions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fairwatch.connectors.config import write_config
from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
from fairwatch.connectors.demo_tasks import TASK_CONFIGS, write_task_demo
from fairwatch.metrics.audit.spec import AuditSpec, SourceSpec, parse_spec

DIABETES_FEATURES = ["time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications",
                     "number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses"]


def demo_folder(folder: Path, rows: int) -> AuditSpec:
    """The binary demo (`demo.duckdb`) and its fairwatch.toml in a data folder; the spec pointing at it."""
    write_demo(folder / "demo.duckdb", rows=rows)
    return _config_for(folder, parse_spec(DEMO_CONFIG))


def task_demo_folder(folder: Path, task: str, rows: int) -> AuditSpec:
    """The task's demo (`demo.duckdb`) and its fairwatch.toml in a data folder; the spec pointing at it."""
    write_task_demo(folder / "demo.duckdb", task, rows=rows)
    return _config_for(folder, parse_spec(TASK_CONFIGS[task]))


def _config_for(folder: Path, spec: AuditSpec) -> AuditSpec:
    """The spec pointed at the folder's demo.duckdb, written as the folder's fairwatch.toml."""
    spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(folder / "demo.duckdb")}))
    write_config(spec, folder / "fairwatch.toml")
    return spec


def point_app_at(monkeypatch, folder: Path) -> None:
    """The app (AppTest, in this process) reads this data folder and its fairwatch.toml."""
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(folder))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(folder / "fairwatch.toml"))


def law_school_predictions(shared: Path) -> pd.DataFrame:
    """law_data.csv: race, sex, region, the label ZFYA as `y` and a linear model's prediction from LSAT and UGPA as `p`."""
    from sklearn.linear_model import LinearRegression

    raw = pd.read_csv(shared / "lawschool" / "law_data.csv").dropna(subset=["ZFYA", "LSAT", "UGPA"])
    model = LinearRegression().fit(raw[["LSAT", "UGPA"]], raw["ZFYA"])
    return pd.DataFrame({"race": raw["race"].astype(str), "sex": raw["sex"].astype(str),
                         "region": raw["region_first"].astype(str), "y": raw["ZFYA"],
                         "p": model.predict(raw[["LSAT", "UGPA"]])})


def diabetes_predictions(shared: Path) -> pd.DataFrame:
    """diabetic_data_first5399.csv: race, gender, age, the label `readmitted` as `y` and a depth-5 tree's class as `p`."""
    from sklearn.tree import DecisionTreeClassifier

    raw = pd.read_csv(shared / "diabetes130" / "diabetic_data_first5399.csv")
    model = DecisionTreeClassifier(max_depth=5, random_state=0).fit(raw[DIABETES_FEATURES], raw["readmitted"])
    return pd.DataFrame({"race": raw["race"].astype(str), "gender": raw["gender"].astype(str),
                         "age": raw["age"].astype(str), "y": raw["readmitted"], "p": model.predict(raw[DIABETES_FEATURES])})
