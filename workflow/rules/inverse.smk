# Inverse problems (not part of `all` unless inverse.in_all; ask for them: snakemake inverse):
# inpainting / colorization / super-resolution by projection onto the measurements of the
# dataset's first n_samples held-out floor images (never trained on), scored like samples plus the measurement errors.
wildcard_constraints:
    task="|".join(specs.INVERSE_TASKS),


rule inverse_sample:
    input:
        store=get_store,
        models=get_models,
        data=get_dataset_data,
    output:
        samples=directory(specs.INVERSE),
        record=record(specs.INVERSE),
    wildcard_constraints:
        experiment=specs.sharded_pattern(config, False),
    params:
        spec=spec_param("inverse", exp_name="experiment", task="task", steps="steps"),
        batch_size=runtime(lambda w: specs.batch_size(config, w.experiment)),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("inverse", "{experiment}_{task}_steps{steps}"),
    benchmark:
        specs.benchmark_path("inverse", "{experiment}_{task}_steps{steps}")
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --truth {input.data} --out {output.samples} --batch-size {params.batch_size} --threads {threads}"
        " > {log} 2>&1"


# sampling.shards = K > 1: as sample_shard / gather_samples (workflow/rules/sample.smk)
rule inverse_shard:
    input:
        store=get_store,
        models=get_models,
        data=get_dataset_data,
    output:
        samples=temp(directory(specs.INVERSE_SHARD)),
        record=temp(record(specs.INVERSE_SHARD)),
    wildcard_constraints:
        experiment=specs.sharded_pattern(config, True),
        i=r"\d+",
        K=r"\d+",
    params:
        spec=spec_param("inverse", exp_name="experiment", task="task", steps="steps"),
        batch_size=runtime(lambda w: specs.batch_size(config, w.experiment)),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("inverse", "{experiment}_{task}_steps{steps}_shard{i}of{K}"),
    benchmark:
        specs.benchmark_path("inverse", "{experiment}_{task}_steps{steps}_shard{i}of{K}")
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --truth {input.data} --shard {wildcards.i}/{wildcards.K} --out {output.samples}"
        " --batch-size {params.batch_size} --threads {threads} > {log} 2>&1"


rule gather_inverse:
    input:
        shards=get_shards,
        records=get_shard_records,
    output:
        samples=directory(specs.INVERSE),
        record=record(specs.INVERSE),
    wildcard_constraints:
        experiment=specs.sharded_pattern(config, True),
    params:
        spec=spec_param("inverse", exp_name="experiment", task="task", steps="steps"),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("inverse", "{experiment}_{task}_steps{steps}_gather"),
    shell:
        "python -m wsgm gather --spec {params.spec:q} --shards {input.shards} --out {output.samples}"
        " --threads {threads} > {log} 2>&1"


rule inverse_evaluate:
    input:
        samples=specs.INVERSE,
        data=get_dataset_data,
        reference=get_reference,
        weights=get_inception,
    output:
        metrics=specs.INVERSE_METRICS,
        record=record(specs.INVERSE_METRICS),
    params:
        spec=spec_param("inverse_evaluate", exp_name="experiment", task="task", steps="steps"),
    threads: 1
    resources:
        group_slot=1,  # grouped under the SLURM profile: one member of a group job at a time
    conda:
        ENV
    log:
        specs.log_path("inverse", "{experiment}_{task}_steps{steps}_evaluate"),
    benchmark:
        specs.benchmark_path("inverse", "{experiment}_{task}_steps{steps}_evaluate")
    shell:
        "python -m wsgm evaluate --spec {params.spec:q} --samples {input.samples} --data {input.data}"
        " --reference {input.reference} --out {output.metrics} --threads {threads} > {log} 2>&1"


rule inverse:
    input:
        specs.all_inverse(config),
