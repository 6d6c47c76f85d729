rule decompose:
    input:
        data=specs.data_path("{dataset}"),
        record=record(specs.data_path("{dataset}")),
    output:
        store=directory("results/decomposed/{dataset}/{wavelet}_J{J}.zarr"),
        record="results/decomposed/{dataset}/{wavelet}_J{J}.zarr.prov.json",
    params:
        spec=spec_param("decompose", wavelet=lambda w: w.wavelet, J=lambda w: int(w.J)),
    threads: 2
    conda:
        ENV
    log:
        "results/logs/decompose/{dataset}_{wavelet}_J{J}.log",
    benchmark:
        "results/benchmarks/decompose/{dataset}_{wavelet}_J{J}.tsv"
    shell:
        "python -m wsgm decompose --spec {params.spec:q} --data {input.data} --out {output.store}"
        " --threads {threads} > {log} 2>&1"
