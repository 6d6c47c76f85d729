rule evaluate:
    input:
        samples="results/samples/{experiment}/steps{steps}.zarr",
        data=lambda w: specs.data_path(specs.experiment(config, w.experiment)["dataset"]),
    output:
        metrics="results/metrics/{experiment}/steps{steps}.json",
        record="results/metrics/{experiment}/steps{steps}.json.prov.json",
    params:
        spec=spec_param("evaluate", exp_name=lambda w: w.experiment, steps=lambda w: int(w.steps)),
    conda:
        ENV
    log:
        "results/logs/evaluate/{experiment}_steps{steps}.log",
    benchmark:
        "results/benchmarks/evaluate/{experiment}_steps{steps}.tsv"
    shell:
        "python -m wsgm evaluate --spec {params.spec:q} --samples {input.samples} --data {input.data}"
        " --out {output.metrics} > {log} 2>&1"
