"""Latent maps and observation layers."""
from .latent import (LATENT_MODELS, ClippedShallowPLRNN, DendriticPLRNN, LatentModel,
                     LSTMCellModel, PLRNN, ShallowPLRNN, TanhRNN, make_latent_model)
from .observation import (OBSERVATION_MODELS, GaussianObservation, ObservationModel,
                          PoissonObservation, make_observation_model)

__all__ = ["LATENT_MODELS", "ClippedShallowPLRNN", "DendriticPLRNN", "LatentModel",
           "LSTMCellModel", "PLRNN", "ShallowPLRNN", "TanhRNN", "make_latent_model",
           "OBSERVATION_MODELS", "GaussianObservation", "ObservationModel", "PoissonObservation",
           "make_observation_model"]
