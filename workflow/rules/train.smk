# One job per (experiment, scale); resumable checkpoints live outside the declared outputs
# (Snakemake deletes declared outputs before a job runs), only the final weights are the output.
rule train_scale:
    input:
        store=lambda w: specs.store_path(config, w.experiment),
        record=lambda w: record(specs.store_path(config, w.experiment)),
    output:
        weights="results/models/{experiment}/scale{j}.pt",
        record="results/models/{experiment}/scale{j}.pt.prov.json",
    wildcard_constraints:  # experiments with models_from use another one's models: no training
        experiment=specs.trained_pattern(config),
    params:
        spec=spec_param("train", exp_name=lambda w: w.experiment, scale=lambda w: int(w.j)),
        checkpoint=lambda w: specs.checkpoint_path(w.experiment, int(w.j)),
    threads: 1
    conda:
        ENV
    log:
        "results/logs/train/{experiment}_scale{j}.log",
    benchmark:
        "results/benchmarks/train/{experiment}_scale{j}.tsv"
    shell:
        "python -m wsgm train --spec {params.spec:q} --store {input.store} --out {output.weights}"
        " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"
