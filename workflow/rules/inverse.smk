# Inverse problems (not part of `all` unless inverse.in_all; ask for them: snakemake inverse):
# inpainting / colorization / super-resolution by projection onto the measurements of the
# dataset's last n_samples images, scored like samples plus the measurement errors.
wildcard_constraints:
    task="|".join(specs.INVERSE_TASKS),


rule inverse_sample:
    input:
        store=lambda w: specs.store_path(config, w.experiment),
        models=lambda w: specs.model_paths(config, w.experiment),
        data=lambda w: specs.data_path(specs.experiment(config, w.experiment)["dataset"]),
    output:
        samples=directory("results/inverse/{experiment}/{task}_steps{steps}.zarr"),
        record="results/inverse/{experiment}/{task}_steps{steps}.zarr.prov.json",
    params:
        spec=spec_param("inverse", exp_name=lambda w: w.experiment, task=lambda w: w.task, steps=lambda w: w.steps),
        offset=lambda w: specs.superres_offset(config, w.experiment),
    threads: 1
    conda:
        ENV
    log:
        "results/logs/inverse/{experiment}_{task}_steps{steps}.log",
    benchmark:
        "results/benchmarks/inverse/{experiment}_{task}_steps{steps}.tsv"
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --truth {input.data} --offset {params.offset} --out {output.samples} --threads {threads}"
        " > {log} 2>&1"


rule inverse_evaluate:
    input:
        samples="results/inverse/{experiment}/{task}_steps{steps}.zarr",
        data=lambda w: specs.data_path(specs.experiment(config, w.experiment)["dataset"]),
        reference=lambda w: specs.reference_path(config, w.experiment),
        weights=lambda w: specs.inception_inputs(config),
    output:
        metrics="results/inverse/{experiment}/{task}_steps{steps}.json",
        record="results/inverse/{experiment}/{task}_steps{steps}.json.prov.json",
    params:
        spec=spec_param(
            "inverse_evaluate", exp_name=lambda w: w.experiment, task=lambda w: w.task, steps=lambda w: w.steps
        ),
    threads: 1
    conda:
        ENV
    log:
        "results/logs/inverse/{experiment}_{task}_steps{steps}_evaluate.log",
    benchmark:
        "results/benchmarks/inverse/{experiment}_{task}_steps{steps}_evaluate.tsv"
    shell:
        "python -m wsgm evaluate --spec {params.spec:q} --samples {input.samples} --data {input.data}"
        " --reference {input.reference} --out {output.metrics} --threads {threads} > {log} 2>&1"


rule inverse:
    input:
        specs.all_inverse(config),
