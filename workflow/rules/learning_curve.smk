# Learning curves (learning_curve.fractions; none by default): the models' EMA snapshots at
# fractions of training (outputs of train_scale) sampled at one step setting per experiment and
# scored, like the final models. {frac} is a fraction label ("0.25").
wildcard_constraints:
    frac=r"0\.\d+",


rule sample_snapshot:
    input:
        store=get_store,
        models=get_snapshot_models,
        records=get_snapshot_model_records,
    output:
        samples=directory(specs.SAMPLES_SNAPSHOT),
        record=record(specs.SAMPLES_SNAPSHOT),
    params:
        spec=spec_param("sample_snapshot", exp_name="experiment", steps="steps", fraction="frac"),
        batch_size=runtime(lambda w: specs.batch_size(config, w.experiment)),
    threads: 1
    conda:
        ENV
    log:
        specs.log_path("sample", "{experiment}_steps{steps}.at{frac}"),
    benchmark:
        specs.benchmark_path("sample", "{experiment}_steps{steps}.at{frac}")
    shell:
        "python -m wsgm sample --spec {params.spec:q} --store {input.store} --models {input.models}"
        " --out {output.samples} --batch-size {params.batch_size} --threads {threads} > {log} 2>&1"


rule evaluate_snapshot:
    input:
        samples=specs.SAMPLES_SNAPSHOT,
        data=get_dataset_data,
        reference=get_reference,
        weights=get_inception,
    output:
        metrics=specs.METRICS_SNAPSHOT,
        record=record(specs.METRICS_SNAPSHOT),
    params:
        spec=spec_param("evaluate_snapshot", exp_name="experiment", steps="steps", fraction="frac"),
    threads: 1
    resources:
        group_slot=1,  # grouped under the SLURM profile: one member of a group job at a time
    conda:
        ENV
    log:
        specs.log_path("evaluate", "{experiment}_steps{steps}.at{frac}"),
    benchmark:
        specs.benchmark_path("evaluate", "{experiment}_steps{steps}.at{frac}")
    shell:
        "python -m wsgm evaluate --spec {params.spec:q} --samples {input.samples} --data {input.data}"
        " --reference {input.reference} --out {output.metrics} --threads {threads} > {log} 2>&1"
