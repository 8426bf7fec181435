"""Training: the loop (:class:`Trainer`) and the forcing schemes it runs."""
from .forcing import (FORCING_SCHEMES, ForcingScheme, GeneralizedTeacherForcing, MultipleShooting,
                      NoForcing, SparseForcing, make_forcing, register_forcing)
from .trainer import (CollapseWarning, Trainer, TrainingDivergedWarning, TrainingHistory,
                      free_run, resolve_device, split_validation)

__all__ = ["Trainer", "TrainingHistory", "TrainingDivergedWarning", "CollapseWarning",
           "free_run", "resolve_device", "split_validation", "FORCING_SCHEMES", "ForcingScheme",
           "GeneralizedTeacherForcing", "MultipleShooting", "NoForcing", "SparseForcing",
           "make_forcing", "register_forcing"]
