rule decompose:
    input:
        data=specs.DATA,
        record=record(specs.DATA),
    output:
        store=directory(specs.STORE),
        record=record(specs.STORE),
    params:
        spec=spec_param("decompose", wavelet="wavelet", J="J"),
    threads: 2
    conda:
        ENV
    log:
        specs.log_path("decompose", "{dataset}_{wavelet}_J{J}"),
    benchmark:
        specs.benchmark_path("decompose", "{dataset}_{wavelet}_J{J}")
    shell:
        "python -m wsgm decompose --spec {params.spec:q} --data {input.data} --out {output.store}"
        " --threads {threads} > {log} 2>&1"
