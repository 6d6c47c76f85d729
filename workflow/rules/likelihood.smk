# Likelihood (not part of `all`; ask for it: snakemake results/likelihood/wsgm.json): bits/dim of
# the dataset's last 64 images through the probability-flow ODE, per scale. Other options (number
# of images, probes, dequantization): run `wsgm likelihood` directly.
rule likelihood:
    input:
        data=lambda w: specs.data_path(specs.experiment(config, w.experiment)["dataset"]),
        store=lambda w: specs.store_path(config, w.experiment),
        models=lambda w: specs.model_paths(config, w.experiment),
    output:
        result="results/likelihood/{experiment}.json",
        record="results/likelihood/{experiment}.json.prov.json",
    params:
        spec=spec_param("likelihood", exp_name=lambda w: w.experiment),
    threads: 1
    conda:
        ENV
    log:
        "results/logs/likelihood/{experiment}.log",
    benchmark:
        "results/benchmarks/likelihood/{experiment}.tsv"
    shell:
        "python -m wsgm likelihood --spec {params.spec:q} --data {input.data} --store {input.store}"
        " --models {input.models} --out {output.result} --threads {threads} > {log} 2>&1"
