"""Hydra callback: build the results table when a multirun ends (basic and submitit launchers alike)."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ResultsTableOnMultirunEnd(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from asap.reporting import report

        sweep_dir = config.hydra.sweep.dir
        try:
            report(sweep_dir, config.get("sweep_name"))
        except FileNotFoundError as err:  # every job failed before writing metrics.json
            log.error("no results table: %s", err)
