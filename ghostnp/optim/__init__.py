"""Optimizers and learning-rate schedules over ``ghostnp.nn.Parameter``, shaped like ``torch.optim``.

    from ghostnp import optim
    opt = optim.SGD(optim.param_groups_no_decay(model, 5e-4), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.WarmupCosine(opt, warmup_steps=500, total_steps=50_000)
    ...
    opt.zero_grad(); loss = criterion(model(x), y); model.backward(criterion.backward())
    opt.step(); sched.step()

``opt.state_dict()`` is a nested dict; `ghostnp.checkpoint` saves it with the model.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR, WarmupCosine
from .optimizer import Optimizer, param_groups_no_decay
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "lr_scheduler",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
    "WarmupCosine",
    "param_groups_no_decay",
]
