"""OmegaConf resolvers used by `conf/` (registered on import of this module)."""

from __future__ import annotations

from omegaconf import OmegaConf

from asap.utils.paths import bundled_bert_tokenizer_dir, package_dir, project_root


def register_resolvers() -> None:
    """Register `${project_root:}`, `${pkg_dir:NAME}`, `${bundled_bert_tokenizer:}` and `${any:a,b,...}` once."""
    resolvers = {
        "project_root": lambda: str(project_root()),
        "pkg_dir": lambda name: str(package_dir(name)),
        "bundled_bert_tokenizer": lambda: str(bundled_bert_tokenizer_dir()),
        "any": lambda *flags: any(bool(f) for f in flags),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
