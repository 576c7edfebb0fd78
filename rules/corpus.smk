# Corpus stage: (demo generation), manifest, the utterances experiments use, fold files.


rule demo_corpus:
    output:
        f"{R}/corpora/{{corpus}}/demo/.done",
    params:
        spec=demo_spec,
    priority: 30  # everything downstream waits for it
    log:
        f"{R}/logs/corpora/{{corpus}}/demo.log",
    benchmark:
        f"{R}/benchmarks/corpora/{{corpus}}/demo.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: corpus_threads
    shell:
        "python -m ser_pipeline demo-corpus --spec {params.spec:q} > {log:q} 2>&1"


rule manifest:
    input:
        corpus_inputs,
    output:
        f"{R}/corpora/{{corpus}}/manifest.csv",
    params:
        spec=prepare_spec,
        audit=lambda wc: sp.audit_report(config, wc.corpus),
    priority: 30  # everything downstream waits for it
    log:
        f"{R}/logs/corpora/{{corpus}}/manifest.log",
    conda:
        "../envs/corpus.yaml"
    shell:
        "python -m ser_pipeline prepare --spec {params.spec:q} --out {output:q} "
        "--audit-report {params.audit:q} > {log:q} 2>&1"


rule utterances:
    input:
        f"{R}/corpora/{{corpus}}/manifest.csv",
    output:
        f"{R}/corpora/{{corpus}}/utterances.csv",
    params:
        spec=utterances_spec,
    priority: 30  # everything downstream waits for it
    log:
        f"{R}/logs/corpora/{{corpus}}/utterances.log",
    conda:
        "../envs/corpus.yaml"
    shell:
        "python -m ser_pipeline utterances --manifest {input:q} --spec {params.spec:q} --out {output:q} "
        "> {log:q} 2>&1"


rule folds:
    input:
        f"{R}/corpora/{{corpus}}/manifest.csv",
    output:
        f"{R}/corpora/{{corpus}}/folds/{{protocol}}.json",
    params:
        spec=fold_spec,
    priority: 30  # everything downstream waits for it
    log:
        f"{R}/logs/corpora/{{corpus}}/folds_{{protocol}}.log",
    conda:
        "../envs/corpus.yaml"
    shell:
        "python -m ser_pipeline folds --manifest {input:q} --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule download:
    output:
        f"{{target}}/{sp.DOWNLOAD_MARKER}",
    params:
        spec=lambda wc: as_json(sp.download_spec(config, wc.target)),
    log:
        f"{R}/logs/download/{{target}}.log",
    conda:
        "../envs/corpus.yaml"
    shell:
        "python -m ser_pipeline download --spec {params.spec:q} --marker {output:q} > {log:q} 2>&1"
