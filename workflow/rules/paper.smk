# The paper's claims with exact Gaussian scores (issue 8): not part of `rule all`.
# `snakemake --cores 2 paper` (the same as `python bench/paper.py`); reruns when config/paper.yaml
# or the code of wsgm.paper and its wsgm imports change.
rule paper:
    input:
        "config/paper.yaml",
    output:
        gaussian="results/bench/paper_gaussian.json",
        cost="results/bench/paper_cost.json",
        sde="results/bench/paper_sde.json",
        figures=expand("results/bench/paper_{name}.png", name=["gaussian", "cost", "sde"]),
    params:
        code=specs.code_hash("wsgm.paper"),
    conda:
        ENV
    log:
        "results/logs/paper/paper.log",
    benchmark:
        "results/bench/paper_snakemake.tsv"
    shell:
        "python -m wsgm paper --config {input:q} --outdir results/bench > {log} 2>&1"
