"""One module per OMASGAN task, each with one trainer named for its role: ``GANTrainer`` (Task 1,
``gan.py``), ``BoundaryTrainer`` (Task 2, ``boundary.py``), ``RetrainTrainer`` (Task 3, ``retrain.py``) and
``DetectorTrainer`` (Task 3-J, ``detector.py``), on the shared ``TaskTrainer`` (``base.py``). A trainer
holds a task's models, optimisers and random streams and does one update per ``step(x)``; the pipeline
owns the loop, logging and checkpoints."""

from omasgan.tasks.base import AdversarialTrainer, TaskTrainer
from omasgan.tasks.boundary import BoundaryTrainer, boundary_loss
from omasgan.tasks.detector import DetectorTrainer, detector_loss
from omasgan.tasks.gan import GANTrainer
from omasgan.tasks.retrain import RetrainTrainer, active_share, retrain_critic_loss

__all__ = [
    "AdversarialTrainer",
    "BoundaryTrainer",
    "DetectorTrainer",
    "GANTrainer",
    "RetrainTrainer",
    "TaskTrainer",
    "active_share",
    "boundary_loss",
    "detector_loss",
    "retrain_critic_loss",
]
