rule report:
    input:
        metrics=specs.all_metrics(config),
        samples=list(specs.grid_samples(config).values()),
        data=sorted({specs.data_path(e["dataset"]) for e in config["experiments"].values()}),
    output:
        quality=report(specs.REPORT_FILES["quality"], caption="../report/quality.rst", category="Quality"),
        spectra=report(specs.REPORT_FILES["spectra"], caption="../report/spectra.rst", category="Quality"),
        samples=report(specs.REPORT_FILES["samples"], caption="../report/samples.rst", category="Samples"),
        summary=specs.REPORT_FILES["summary"],
        records=[record(p) for p in specs.REPORT_FILES.values()],
    params:
        spec=spec_param("report"),
        grid=[f"{n}={p}" for n, p in specs.grid_samples(config).items()],
        data=[f"{n}={specs.data_path(e['dataset'])}" for n, e in config["experiments"].items()],
    conda:
        ENV
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    shell:
        "python -m wsgm report --spec {params.spec:q} --metrics {input.metrics} --samples {params.grid}"
        " --data {params.data} --outdir results/report > {log} 2>&1"
