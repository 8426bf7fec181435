"""Training: sparse teacher forcing, generalized teacher forcing, clipped BPTT baseline."""
from .trainer import (Trainer, TrainerConfig, TrainingDivergedWarning, TrainingHistory, free_run,
                      resolve_device)

__all__ = ["Trainer", "TrainerConfig", "TrainingDivergedWarning", "TrainingHistory", "free_run",
           "resolve_device"]
