# One job per (experiment, scale); resumable checkpoints live outside the declared outputs
# (Snakemake deletes declared outputs before a job runs), only the final weights are the output.
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
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("train", "{experiment}_scale{j}"),
    benchmark:
        specs.benchmark_path("train", "{experiment}_scale{j}")
    shell:
        "python -m wsgm train --spec {params.spec:q} --store {input.store} --out {output.weights}"
        " --checkpoint {params.checkpoint} --threads {threads} --snapshots {output.snapshots} > {log} 2>&1"
