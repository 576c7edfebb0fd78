# ser_pipeline: wiring only. Logic lives in the ser_pipeline package; see docs/design.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/aggregate.smk"


report: "workflow/report/workflow.rst"


# Aggregation is seconds of work: on a cluster it runs on the submitting node.
localrules:
    all,
    table,
    scaling_plot,
    confusion_plot,
    summary,


rule all:
    input:
        all_outputs(config),
    default_target: True
