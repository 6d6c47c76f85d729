# One job per (experiment, step setting): coarse-to-fine cascade through all J+1 models.
# {steps} is "8" (8 steps at every scale) or "8-8-32" (per scale 0..J).
# sampling.shards = K > 1 splits it: K `sample_shard` jobs each draw a contiguous slice of the
# samples (per-sample randomness: the same bits as one job), one `gather_samples` job joins them
# into the same store and record `sample` writes, so evaluate and everything downstream are the
# same rules. The batch size is a runtime setting (`runtime`): editing it reruns nothing.
rule sample:
    input:
        store=get_store,
        models=get_models,
        records=get_model_records,
    output:
        samples=directory(specs.SAMPLES),
        record=record(specs.SAMPLES),
    wildcard_constraints:
        experiment=specs.sharded_pattern(config, False),
    params:
        spec=spec_param("sample", exp_name="experiment", steps="steps"),
        batch_size=runtime(lambda w: specs.batch_size(config, w.experiment)),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("sample", "{experiment}_steps{steps}"),
    benchmark:
        specs.benchmark_path("sample", "{experiment}_steps{steps}")
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --out {output.samples} --batch-size {params.batch_size} --threads {threads} > {log} 2>&1"


# Shard {i} of {K}: rows [i n/K, (i+1) n/K) (np.array_split boundaries). Temporary: the gathered
# store holds the same arrays, and its record embeds the shards' records.
rule sample_shard:
    input:
        store=get_store,
        models=get_models,
        records=get_model_records,
    output:
        samples=temp(directory(specs.SHARD)),
        record=temp(record(specs.SHARD)),
    wildcard_constraints:
        experiment=specs.sharded_pattern(config, True),
        i=r"\d+",
        K=r"\d+",
    params:
        spec=spec_param("sample", exp_name="experiment", steps="steps"),
        batch_size=runtime(lambda w: specs.batch_size(config, w.experiment)),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("sample", "{experiment}_steps{steps}_shard{i}of{K}"),
    benchmark:
        specs.benchmark_path("sample", "{experiment}_steps{steps}_shard{i}of{K}")
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --shard {wildcards.i}/{wildcards.K} --out {output.samples} --batch-size {params.batch_size}"
        " --threads {threads} > {log} 2>&1"


rule gather_samples:
    input:
        shards=get_shards,
        records=get_shard_records,
    output:
        samples=directory(specs.SAMPLES),
        record=record(specs.SAMPLES),
    wildcard_constraints:
        experiment=specs.sharded_pattern(config, True),
    params:
        spec=spec_param("sample", exp_name="experiment", steps="steps"),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("sample", "{experiment}_steps{steps}_gather"),
    shell:
        "python -m wsgm gather --spec {params.spec:q} --shards {input.shards} --out {output.samples}"
        " --threads {threads} > {log} 2>&1"
