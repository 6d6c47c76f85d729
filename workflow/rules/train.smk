# One job per (experiment, scale); resumable checkpoints live outside the declared outputs
# (Snakemake deletes declared outputs before a job runs), only the final weights are the output.
# train.gpus x train.nodes DDP processes (one process group, `wsgm train --gpus --nodes` launches
# torchrun): resources, not params, so editing them reruns nothing. One node asks SLURM for
# `--gpus=N`; M > 1 nodes for `--gres=gpu:N` (per node) and `--nodes=M`. threads = processes per
# node (one CPU thread each; `--threads` is shared among the node's processes). `exec`: the job's
# shell becomes the training process, so SLURM's SIGUSR1 before the time limit (--signal=USR1@120
# reaches every process of the step) cannot kill the shell, and Snakemake with it, before
# training has written its checkpoint.
rule train_scale:
    input:
        store=get_store,
        record=get_store_record,
    output:
        weights=specs.MODEL,
        record=record(specs.MODEL),
        snapshots=specs.snapshot_outputs(config),  # learning curves: EMA weights at fractions (none by default)
        snapshot_records=[record(p) for p in specs.snapshot_outputs(config)],
    wildcard_constraints:  # experiments with models_from use another one's models: no training
        experiment=specs.trained_pattern(config),
    params:
        spec=spec_param("train", exp_name="experiment", scale="j"),
        checkpoint=get_checkpoint,
    threads: train_gpus
    resources:
        gpu=lambda w: train_gpus(w) if train_nodes(w) == 1 else 0,
        gres=lambda w: "" if train_nodes(w) == 1 else f"gpu:{train_gpus(w)}",
        nodes=train_nodes,
        gpus_per_node=train_gpus,
    conda:
        ENV
    log:
        specs.log_path("train", "{experiment}_scale{j}"),
    benchmark:
        specs.benchmark_path("train", "{experiment}_scale{j}")
    shell:
        "exec python -m wsgm train --spec {params.spec:q} --store {input.store} --out {output.weights}"
        " --checkpoint {params.checkpoint} --threads {threads} --snapshots {output.snapshots}"
        " --gpus {resources.gpus_per_node} --nodes {resources.nodes} > {log} 2>&1"
