"""Training: the coarse-stage regressor on synthetic faces (and the GCN stage's trainer)."""

from facelib.train.regressor import RegressorTrainConfig, evaluate_regressor, render_pool, train_regressor

__all__ = ["RegressorTrainConfig", "evaluate_regressor", "render_pool", "train_regressor"]
