"""Latent maps, observation layers, and running them: free runs and forced states."""
from .latent import (LATENT_MODELS, ClippedShallowPLRNN, DendriticPLRNN, LatentModel,
                     LSTMCellModel, PLRNN, ShallowPLRNN, TanhRNN, make_latent_model)
from .observation import (OBSERVATION_MODELS, GaussianObservation, ObservationModel,
                          PoissonObservation, make_observation_model)
from .rollout import free_run, infer_states, mean_state, pad_state

__all__ = ["LATENT_MODELS", "ClippedShallowPLRNN", "DendriticPLRNN", "LatentModel",
           "LSTMCellModel", "PLRNN", "ShallowPLRNN", "TanhRNN", "make_latent_model",
           "OBSERVATION_MODELS", "GaussianObservation", "ObservationModel", "PoissonObservation",
           "make_observation_model", "free_run", "infer_states", "pad_state"]
