"""Learning: estimators, local rules, noise, optimizers and the EP trainer (small composable pieces)."""
from .estimators import Centered, OneSided, RandomSign, get_estimator
from .noise import MeasurementNoise
from .optimizers import SGD
from .rules import DeltaVSquaredRule, SignRule, weighted_half_drop_squared
from .schedules import CosineAnnealing, ExponentialDecay, get_schedule
from .run import TrainingRun
from .trainer import EPTrainer

__all__ = ["Centered", "OneSided", "RandomSign", "get_estimator", "MeasurementNoise", "SGD", "DeltaVSquaredRule",
           "SignRule", "weighted_half_drop_squared", "EPTrainer", "TrainingRun",
           "CosineAnnealing", "ExponentialDecay", "get_schedule"]
