# ser_pipeline: wiring only. Logic lives in the ser_pipeline package; see docs/design.md.
from snakemake.utils import min_version

from ser_pipeline import config as sp

min_version("9.0")


# `snakemake --configfile X` runs exactly X's experiment: config.yaml is read only when no
# config file is given, so nothing of the demo is merged into another experiment.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# Strict re-read (duplicate keys are an error), then schema + cross-reference checks,
# defaults filled in; every error names the file and the key.
for _f in workflow.overwrite_configfiles or ["config.yaml"]:
    sp.read_yaml(_f)
sp.validate(config, source=", ".join(map(str, workflow.overwrite_configfiles or ["config.yaml"])))


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/aggregate.smk"


report: "workflow/report/workflow.rst"


# Model checks that need torch (unknown hyperparameters, streams): once, before any job.
onstart:
    from ser_pipeline.preflight import check_models

    check_models(config)


# Aggregation is seconds of work: on a cluster it runs on the submitting node.
localrules:
    all,
    table,
    scaling_plot,
    confusion_plot,
    summary,


rule all:
    input:
        sp.all_outputs(config),
    default_target: True
