"""Learning: the EP rule's pieces (estimators, measurement noise, local rules: ``ep``), the optimizer and its
schedules (``optimizers``), the estimator (``trainer``), checkpoints (``checkpoint``) and run management
(``run``); a backpropagation reference of the same topology (``backprop``)."""
from .ep import (
                 Centered,
                 DeltaVSquaredRule,
                 MeasurementNoise,
                 OneSided,
                 RandomSign,
                 SignRule,
                 get_estimator,
                 get_rule,
                 weighted_half_drop_squared,
)
from .backprop import BackpropMLP
from .optimizers import SGD, CosineAnnealing, ExponentialDecay, get_schedule
from .run import TrainingRun
from .trainer import EPTrainer

__all__ = ["Centered", "OneSided", "RandomSign", "get_estimator", "MeasurementNoise", "SGD", "DeltaVSquaredRule",
           "SignRule", "get_rule", "weighted_half_drop_squared", "EPTrainer", "TrainingRun",
           "CosineAnnealing", "ExponentialDecay", "get_schedule", "BackpropMLP"]
