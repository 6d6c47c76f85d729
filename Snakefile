# wsgm: wavelet score-based generative models, end to end.
# Thin by design: the logic lives in the `wsgm` package; each rule shells out to `wsgm <stage>`.
from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, unless the user names their own with --configfile (which then replaces
# it rather than being merged into it, so no default experiment leaks into an HPC config).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/decompose.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/inverse.smk"
include: "workflow/rules/likelihood.smk"
include: "workflow/rules/learning_curve.smk"


rule all:
    input:
        list(specs.report_files(config).values()),
        specs.all_inverse(config) if config["inverse"]["in_all"] else [],
    default_target: True
