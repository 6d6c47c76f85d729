rule report:
    input:
        metrics=specs.report_metrics(config),
        samples=list(specs.all_samples(config).values()),
        data=sorted({specs.data_path(e["dataset"]) for e in config["experiments"].values()}),
    output:
        quality=report(specs.REPORT_FILES["quality"], caption="../report/quality.rst", category="Quality"),
        scales=report(specs.REPORT_FILES["scales"], caption="../report/scales.rst", category="Quality"),
        spectra=report(specs.REPORT_FILES["spectra"], caption="../report/spectra.rst", category="Quality"),
        samples=report(specs.REPORT_FILES["samples"], caption="../report/samples.rst", category="Samples"),
        steps_grid=report(specs.REPORT_FILES["steps_grid"], caption="../report/steps_grid.rst", category="Samples"),
        cost=report(specs.REPORT_FILES["cost"], caption="../report/cost.rst", category="Quality"),
        time=report(specs.REPORT_FILES["time"], caption="../report/time.rst", category="Quality"),
        table_html=report(specs.REPORT_FILES["table_html"], caption="../report/best.rst", category="Quality"),
        table_md=specs.REPORT_FILES["table_md"],
        quality_svg=specs.REPORT_FILES["quality_svg"],
        scales_svg=specs.REPORT_FILES["scales_svg"],
        spectra_svg=specs.REPORT_FILES["spectra_svg"],
        cost_svg=specs.REPORT_FILES["cost_svg"],
        time_svg=specs.REPORT_FILES["time_svg"],
        summary=specs.REPORT_FILES["summary"],
        records=[record(p) for p in specs.report_files(config).values()],
        **({"training": report(specs.TRAINING_FILES["training"], caption="../report/training.rst", category="Quality"),
            "training_svg": specs.TRAINING_FILES["training_svg"]} if config["learning_curve"]["fractions"] else {}),
    params:
        spec=spec_param("report"),
        grid=[f"{n}={p}" for n, p in specs.all_samples(config).items()],
        data=[f"{n}={specs.data_path(e['dataset'])}" for n, e in config["experiments"].items()],
    conda:
        ENV
    log:
        specs.log_path("report", "report"),
    benchmark:
        specs.benchmark_path("report", "report")
    shell:
        "python -m wsgm report --spec {params.spec:q} --metrics {input.metrics} --samples {params.grid}"
        f" --data {{params.data}} --outdir {specs.REPORT_DIR} > {{log}} 2>&1"
