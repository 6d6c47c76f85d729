# Likelihood (not part of `all`; ask for it: snakemake results/likelihood/wsgm.json): bits/dim of
# the dataset's last 64 images through the probability-flow ODE, per scale. Other options (number
# of images, probes, dequantization): run `wsgm likelihood` directly.
rule likelihood:
    input:
        data=get_dataset_data,
        store=get_store,
        models=get_models,
    output:
        result=specs.LIKELIHOOD,
        record=record(specs.LIKELIHOOD),
    params:
        spec=spec_param("likelihood", exp_name="experiment"),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("likelihood", "{experiment}"),
    benchmark:
        specs.benchmark_path("likelihood", "{experiment}")
    shell:
        "python -m wsgm likelihood --spec {params.spec:q} --data {input.data} --store {input.store}"
        " --models {input.models} --out {output.result} --threads {threads} > {log} 2>&1"
