rule make_dataset:
    input:
        dataset_source,
    output:
        data=directory(specs.data_path("{dataset}")),
        record=record(specs.data_path("{dataset}")),
    params:
        spec=spec_param("dataset", name=lambda w: w.dataset),
    conda:
        ENV
    log:
        "results/logs/dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/dataset/{dataset}.tsv"
    shell:
        "python -m wsgm dataset --spec {params.spec:q} --out {output.data} > {log} 2>&1"
