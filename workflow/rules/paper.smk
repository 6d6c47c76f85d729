# The paper's claims with exact Gaussian scores (issue 8): not part of `rule all`.
# `snakemake --cores 2 paper` (the same as `python bench/paper.py`); reruns when config/paper.yaml
# or the code `wsgm paper` runs changes (wsgm.paper, its imports, its CLI entry).
rule paper:
    input:
        "config/paper.yaml",
    output:
        gaussian=f"{specs.BENCH_DIR}/paper_gaussian.json",
        cost=f"{specs.BENCH_DIR}/paper_cost.json",
        sde=f"{specs.BENCH_DIR}/paper_sde.json",
        figures=expand(f"{specs.BENCH_DIR}/paper_{{name}}.png", name=["gaussian", "cost", "sde"]),
    params:
        code=specs.paper_code(),
    conda:
        ENV
    log:
        specs.log_path("paper", "paper"),
    benchmark:
        f"{specs.BENCH_DIR}/paper_snakemake.tsv"
    shell:
        f"python -m wsgm paper --config {{input:q}} --outdir {specs.BENCH_DIR} > {{log}} 2>&1"
