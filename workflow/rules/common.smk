# Config checks (one clear message on a bad config) and the helpers the rules share.
from wsgm import config as wsgm_config
from wsgm import specs

try:
    config.update(wsgm_config.check(config))
except wsgm_config.ConfigError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, "../schemas/config.schema.yaml")


# Jobs run `python -m wsgm ...` in the working directory: from the repository root that is this
# checkout's package (the code whose hashes are in each rule's params), elsewhere the installed one.
# One environment for every rule (also used by `snakemake --sdm conda`).
ENV = "../../environment.yml"


wildcard_constraints:
    j=r"\d+",
    J=r"\d+",
    steps=r"\d+(-\d+)*",


def spec_param(stage, **keys):
    """params: entry holding the stage's narrowed spec (config values + code version) as JSON."""
    build = getattr(specs, stage)
    return lambda w: specs.as_json(build(config, **{k: f(w) for k, f in keys.items()}))


def record(path):
    """The provenance sidecar that every output carries."""
    return path + ".prov.json"


def dataset_source(w):
    """The file converted: a fetched download, or a user's npz file, archive or folder (whose
    mtime triggers a rebuild); simulations have none."""
    source = specs.dataset_source(w.dataset, config["datasets"][w.dataset])
    return [source] if source else []
