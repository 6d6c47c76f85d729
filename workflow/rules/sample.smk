# One job per (experiment, step setting): coarse-to-fine cascade through all J+1 models.
# {steps} is "8" (8 steps at every scale) or "8-8-32" (per scale 0..J).
rule sample:
    input:
        store=lambda w: specs.store_path(config, w.experiment),
        models=lambda w: specs.model_paths(config, w.experiment),
        records=lambda w: [record(p) for p in specs.model_paths(config, w.experiment)],
    output:
        samples=directory("results/samples/{experiment}/steps{steps}.zarr"),
        record="results/samples/{experiment}/steps{steps}.zarr.prov.json",
    params:
        spec=spec_param("sample", exp_name=lambda w: w.experiment, steps=lambda w: w.steps),
    threads: 1
    conda:
        ENV
    log:
        "results/logs/sample/{experiment}_steps{steps}.log",
    benchmark:
        "results/benchmarks/sample/{experiment}_steps{steps}.tsv"
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --out {output.samples} --threads {threads} > {log} 2>&1"

