# One job per (experiment, step setting): coarse-to-fine cascade through all J+1 models.
# {steps} is "8" (8 steps at every scale) or "8-8-32" (per scale 0..J).
rule sample:
    input:
        store=get_store,
        models=get_models,
        records=get_model_records,
    output:
        samples=directory(specs.SAMPLES),
        record=record(specs.SAMPLES),
    params:
        spec=spec_param("sample", exp_name="experiment", steps="steps"),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("sample", "{experiment}_steps{steps}"),
    benchmark:
        specs.benchmark_path("sample", "{experiment}_steps{steps}")
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --out {output.samples} --threads {threads} > {log} 2>&1"
