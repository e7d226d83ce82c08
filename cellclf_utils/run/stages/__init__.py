"""What each notebook stage does around its computation, one module per stage kind, so the
notebooks stay thin: ``inputs`` (the dataset, the run's folds, images), ``models`` (the network
of 02-05), ``outputs`` (a trained stage's files, scores and figures), ``eda`` (01),
``shallow`` (02c), ``pseudo`` (06), ``ensemble`` (07), ``distill`` (a fine-tune's teachers).
``start`` opens the stage's folder.
"""
from ..stage import start
from .distill import DistillError, soft_targets
from .eda import eda_metrics, quality_report
from .ensemble import members, save_ensemble_outputs
from .inputs import TrainingData, load_dataset, training_data
from .models import backbone_model, cnn_model, finetune_title, freeze_table, stage_model
from .outputs import format_scores, gradcam_figure, save_model_outputs
from .pseudo import pseudo_label_teachers, pseudo_table, save_best_student
from .shallow import probe_featurizer

__all__ = ["start", "eda_metrics", "quality_report", "members", "save_ensemble_outputs", "TrainingData",
           "load_dataset", "training_data", "backbone_model", "cnn_model", "finetune_title", "freeze_table",
           "stage_model", "format_scores", "gradcam_figure", "save_model_outputs", "pseudo_label_teachers",
           "pseudo_table", "save_best_student", "probe_featurizer", "DistillError", "soft_targets"]
