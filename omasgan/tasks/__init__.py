"""One module per OMASGAN task. Trainers hold a task's models, optimisers and random streams and do one
update per ``step(x)``; the pipeline owns the loop, logging and checkpoints."""

from omasgan.tasks.detector import DetectorTrainer, detector_loss
from omasgan.tasks.task1 import Task1Trainer
from omasgan.tasks.task2 import BoundaryTrainer, boundary_loss
from omasgan.tasks.task3 import RetrainTrainer, active_share, retrain_critic_loss

__all__ = [
    "BoundaryTrainer",
    "DetectorTrainer",
    "RetrainTrainer",
    "Task1Trainer",
    "active_share",
    "boundary_loss",
    "detector_loss",
    "retrain_critic_loss",
]
