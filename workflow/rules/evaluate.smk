# Real-data statistics per (dataset, wavelet, J): FID features and spectra at every resolution.
rule reference:
    input:
        data=specs.DATA,
        record=record(specs.DATA),
        weights=get_inception,
    output:
        reference=specs.REFERENCE,
        record=record(specs.REFERENCE),
    params:
        spec=spec_param("reference", dataset_name="dataset", wavelet="wavelet", J="J"),
    threads: 1
    resources:
        group_slot=1,  # grouped under the SLURM profile: one member of a group job at a time
    conda:
        ENV
    log:
        specs.log_path("reference", "{dataset}_{wavelet}_J{J}"),
    benchmark:
        specs.benchmark_path("reference", "{dataset}_{wavelet}_J{J}")
    shell:
        "python -m wsgm reference --spec {params.spec:q} --data {input.data} --out {output.reference}"
        " --threads {threads} > {log} 2>&1"


rule evaluate:
    input:
        samples=specs.SAMPLES,
        data=get_dataset_data,
        reference=get_reference,
        weights=get_inception,
    output:
        metrics=specs.METRICS,
        record=record(specs.METRICS),
    params:
        spec=spec_param("evaluate", exp_name="experiment", steps="steps"),
    threads: 1
    resources:
        group_slot=1,  # grouped under the SLURM profile: one member of a group job at a time
    conda:
        ENV
    log:
        specs.log_path("evaluate", "{experiment}_steps{steps}"),
    benchmark:
        specs.benchmark_path("evaluate", "{experiment}_steps{steps}")
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
        specs.log_path("fetch_inception"),
    shell:
        "python -m wsgm fetch --url {params.url:q} --sha256 {params.sha256} --out {output} > {log} 2>&1"
