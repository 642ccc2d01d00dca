"""What conf/ needs before Hydra composes it: the `${...}` resolvers and the schemas of the typed groups.

Import this module before `hydra.main` or `compose` reads conf/. The dataclasses of `asap.models.config` are
stored in Hydra's ConfigStore as `<group>/schema`; every option of those groups lists `- schema` first in its
defaults, so it states only what differs from them and OmegaConf checks each key and type at compose time.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

import asap.utils.resolvers  # noqa: F401  (registers the ${...} resolvers used in conf/)
from asap.models.config import AblationConfig, LossConfig, ModelConfig, OptimConfig

SCHEMA = "schema"  # the option name each preset extends: `defaults: [schema, _self_]`
SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "loss": LossConfig,
    "ablation": AblationConfig,
    "optim": OptimConfig,
}


def register_schemas() -> None:
    """Store each group's dataclass as `<group>/schema` (idempotent)."""
    store = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        store.store(group=group, name=SCHEMA, node=node)


register_schemas()
