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
    """params: entry holding the stage's narrowed spec (config values + code version) as JSON.
    Each keyword of the spec builder is a wildcard name ("experiment") or a function of the wildcards."""
    build = getattr(specs, stage)

    def value(w, key):
        return getattr(w, key) if isinstance(key, str) else key(w)

    return lambda w: specs.as_json(build(config, **{k: value(w, key) for k, key in keys.items()}))


def record(path):
    """The provenance sidecar that every output carries."""
    return path + ".prov.json"


def dataset_source(w):
    """The file converted: a fetched download, or a user's npz file, archive or folder (whose
    mtime triggers a rebuild); simulations have none."""
    source = specs.dataset_source(w.dataset, config["datasets"][w.dataset])
    return [source] if source else []


# Input functions of the rules whose jobs are per experiment ({experiment} wildcard).
def get_dataset_data(w):
    """The experiment's dataset store."""
    return specs.data_path(specs.experiment(config, w.experiment)["dataset"])


def get_store(w):
    """The experiment's decomposed (wavelet coefficient) store."""
    return specs.store_path(config, w.experiment)


def get_store_record(w):
    return record(get_store(w))


def get_models(w):
    """The weights of scales 0..J (another experiment's with models_from)."""
    return specs.model_paths(config, w.experiment)


def get_model_records(w):
    return [record(p) for p in get_models(w)]


def get_snapshot_models(w):
    """Learning curves: the snapshot weights of scales 0..J at fraction {frac}."""
    return specs.snapshot_model_paths(config, w.experiment, w.frac)


def get_snapshot_model_records(w):
    return [record(p) for p in get_snapshot_models(w)]


def get_reference(w):
    """The real-data statistics of the experiment's dataset, wavelet and J."""
    return specs.reference_path(config, w.experiment)


def get_inception(w):
    """The fetched Inception weights, when the config scores with them."""
    return specs.inception_inputs(config)


def get_checkpoint(w):
    return specs.checkpoint_path(w.experiment, int(w.j))


class Runtime:
    """A params: value Snakemake does not compare (not a builtin type, so its params trigger skips
    it): a runtime setting that does not change results, such as the sampling batch size."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return str(self.value)


def runtime(fn):
    """params: entry of a runtime setting ``fn(wildcards)``: editing it reruns nothing."""
    return lambda w: Runtime(fn(w))


def get_shards(w):
    """The K shard stores a gather job joins (sampling.shards of the experiment)."""
    task = getattr(w, "task", None)
    return specs.shard_paths(w.experiment, w.steps, specs.shards(config, w.experiment), task)


def get_shard_records(w):
    return [record(p) for p in get_shards(w)]


def train_gpus(w):
    """DDP processes per node of a training job (train.gpus): its threads and GPUs (train.smk)."""
    return specs.train_processes(config, w.experiment)[0]


def train_nodes(w):
    """Nodes of a training job (train.nodes; > 1: srun starts one torchrun per node)."""
    return specs.train_processes(config, w.experiment)[1]

