# Real-data statistics per (dataset, wavelet, J): FID features and spectra at every resolution.
rule reference:
    input:
        data=specs.data_path("{dataset}"),
        record=record(specs.data_path("{dataset}")),
        weights=lambda w: specs.inception_inputs(config),
    output:
        reference="results/reference/{dataset}/{wavelet}_J{J}.npz",
        record="results/reference/{dataset}/{wavelet}_J{J}.npz.prov.json",
    params:
        spec=spec_param(
            "reference",
            dataset_name=lambda w: w.dataset,
            wavelet=lambda w: w.wavelet,
            J=lambda w: int(w.J),
        ),
    threads: 1
    conda:
        ENV
    log:
        "results/logs/reference/{dataset}_{wavelet}_J{J}.log",
    benchmark:
        "results/benchmarks/reference/{dataset}_{wavelet}_J{J}.tsv"
    shell:
        "python -m wsgm reference --spec {params.spec:q} --data {input.data} --out {output.reference}"
        " --threads {threads} > {log} 2>&1"


rule evaluate:
    input:
        samples="results/samples/{experiment}/steps{steps}.zarr",
        data=lambda w: specs.data_path(specs.experiment(config, w.experiment)["dataset"]),
        reference=lambda w: specs.reference_path(config, w.experiment),
        weights=lambda w: specs.inception_inputs(config),
    output:
        metrics="results/metrics/{experiment}/steps{steps}.json",
        record="results/metrics/{experiment}/steps{steps}.json.prov.json",
    params:
        spec=spec_param("evaluate", exp_name=lambda w: w.experiment, steps=lambda w: w.steps),
    threads: 1
    conda:
        ENV
    log:
        "results/logs/evaluate/{experiment}_steps{steps}.log",
    benchmark:
        "results/benchmarks/evaluate/{experiment}_steps{steps}.tsv"
    shell:
        "python -m wsgm evaluate --spec {params.spec:q} --samples {input.samples} --data {input.data}"
        " --reference {input.reference} --out {output.metrics} --threads {threads} > {log} 2>&1"


# Inception weights, fetched once on the submit host (compute nodes may have no internet), with
# their checksum; only needed with fid.extractor: inception-v3-compat and no fid.weights.
localrules:
    fetch_inception,


rule fetch_inception:
    output:
        specs.INCEPTION_WEIGHTS,
    params:
        url=config["fid"]["url"],
        sha256=config["fid"]["sha256"],
    conda:
        ENV
    log:
        "results/logs/fetch_inception.log",
    shell:
        "python -m wsgm fetch --url {params.url:q} --sha256 {params.sha256} --out {output} > {log} 2>&1"
