"""Data parallelism of an lm-eval model over accelerate's processes (``accelerate launch`` / ``torchrun``).

lm-eval splits the requests among the ranks and gathers the results through the model's
``all_gather`` / ``gather_object`` / ``barrier``; this mixin provides them and the device of each rank.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)


class DataParallelMixin:
    """``_setup_device(device)`` and lm-eval's three collectives, for a ``TemplateLM`` subclass."""

    def _setup_device(self, device) -> None:
        """Set ``_device`` (and, with several processes, ``accelerator``, ``_rank``, ``_world_size``)."""
        self.accelerator = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            # Without an accelerator, processes form a gloo (MULTI_CPU) group only when asked for the CPU.
            accelerator = Accelerator(cpu=str(device) == "cpu" or not torch.cuda.is_available())
            if accelerator.num_processes > 1:
                self.accelerator, self._device = accelerator, accelerator.device
                self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
                return
        if device and str(device).startswith("cuda") and not torch.cuda.is_available():
            logger.warning("lift_dlm: device %r is not available (lm_eval's --device defaults to cuda); using cpu.",
                           device)
            device = "cpu"
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def all_gather(self, tensor):
        return self.accelerator.gather(tensor) if self.accelerator is not None else tensor

    def gather_object(self, obj, dst=0):
        if self.accelerator is None:
            return [obj]
        result = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj=obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
