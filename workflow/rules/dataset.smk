rule make_dataset:
    input:
        dataset_source,
    output:
        data=directory(specs.DATA),
        record=record(specs.DATA),
    params:
        spec=spec_param("dataset", name="dataset"),
    conda:
        ENV
    log:
        specs.log_path("dataset", "{dataset}"),
    benchmark:
        specs.benchmark_path("dataset", "{dataset}")
    shell:
        "python -m wsgm dataset --spec {params.spec:q} --out {output.data} > {log} 2>&1"
