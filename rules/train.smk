# Training stage: one job per (model, fold, data size, seed). Small jobs share the group
# "train" so a cluster profile can bundle them (--group-components train=N).


rule train:
    input:
        unpack(train_inputs),
        manifest=f"{R}/corpora/{{corpus}}/manifest.csv",
        folds=f"{R}/corpora/{{corpus}}/folds/{{protocol}}.json",
    output:
        result=f"{R}/runs/{{corpus}}/{{protocol}}/{{model}}/n{{size}}/s{{seed}}/{{fold}}.json",
        model=directory(f"{R}/models/{{corpus}}/{{protocol}}/{{model}}/n{{size}}/s{{seed}}/{{fold}}"),
    params:
        spec=train_spec,
    log:
        f"{R}/logs/runs/{{corpus}}/{{protocol}}/{{model}}/n{{size}}/s{{seed}}/{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/runs/{{corpus}}/{{protocol}}/{{model}}/n{{size}}/s{{seed}}/{{fold}}.tsv"
    conda:
        "../envs/train.yaml"
    group:
        "train"
    threads: 1
    priority: train_priority  # long jobs first, so that no long job is left alone at the end
    resources:
        gpu=model_uses_gpu,
        mem_mb=4000,
        runtime=60,
    shell:
        "python -m ser_pipeline train --spec {params.spec:q} --out {output.result:q} "
        "--model-dir {output.model:q} --threads {threads} > {log:q} 2>&1"


rule export:
    input:
        unpack(export_inputs),
    output:
        directory(f"{R}/export/{{export}}"),
    params:
        spec=export_spec,
    log:
        f"{R}/logs/export/{{export}}.log",
    benchmark:
        f"{R}/benchmarks/export/{{export}}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "python -m ser_pipeline export --spec {params.spec:q} --threads {threads} > {log:q} 2>&1"
