__version__ = "0.1.0"

# `import llmops_bench` stays instant: names resolve on first use (PEP 562), so pandas, litellm and mlflow load only when a
# feature needs them. This file is written by hand; every module it names is exported from nbs/.
_EXPORTS = {
    "Prompt": "core", "Model": "core", "Dataset": "core", "Case": "core", "Settings": "core", "load_settings": "core",
    "LlmopsBenchError": "core", "ConfigError": "core", "TemplateError": "core", "DatasetError": "core", "ModelError": "core",
    "PolicyError": "core", "GateFailed": "core",
    "Runner": "runner", "ResponseCache": "runner", "plan": "runner", "plan_variants": "runner", "Variant": "runner",
    "Scorer": "scorers", "scorer": "scorers",
    "summarize": "stats",
    "evaluate": "evaluation", "Results": "evaluation", "log_results": "evaluation", "log": "evaluation", "load": "evaluation",
    "runs": "evaluation", "variants_from_spec": "evaluation", "UnloggedWarning": "evaluation",
    "register_prompt": "tracking", "load_prompt": "tracking",
    "Compare": "widgets", "Grid": "widgets", "Runs": "widgets",
    "promote": "monitor", "rollback": "monitor",
}
_MODULES = ("core", "governance", "providers", "runner", "scorers", "stats", "plots", "tracking", "evaluation", "views", "notebooks", "widgets", "specs", "jobs", "monitor", "server", "cli")
__all__ = [*_EXPORTS, *_MODULES]

def __getattr__(name: str):
    import importlib
    if name in _EXPORTS: return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in _MODULES: return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def __dir__() -> list[str]: return sorted([*globals(), *__all__])
