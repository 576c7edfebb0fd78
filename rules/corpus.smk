# Corpus stage: (demo generation), manifest, fold files.


rule demo_corpus:
    output:
        f"{R}/corpora/{{corpus}}/demo/.done",
    params:
        out=lambda wc: f"{R}/corpora/{wc.corpus}/demo",
        seed=lambda wc: config["corpora"][wc.corpus]["demo"].get("seed", 0),
        per_class=lambda wc: config["corpora"][wc.corpus]["demo"].get("utterances_per_speaker_per_class", 12),
        sessions=lambda wc: config["corpora"][wc.corpus]["demo"].get("sessions", 5),
    log:
        f"{R}/logs/corpora/{{corpus}}/demo.log",
    benchmark:
        f"{R}/benchmarks/corpora/{{corpus}}/demo.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 2
    shell:
        "python -m ser_pipeline demo-corpus --out {params.out} --seed {params.seed} "
        "--per-class {params.per_class} --sessions {params.sessions} > {log} 2>&1"


rule manifest:
    input:
        demo_marker,
    output:
        f"{R}/corpora/{{corpus}}/manifest.csv",
    params:
        spec=prepare_spec,
    log:
        f"{R}/logs/corpora/{{corpus}}/manifest.log",
    conda:
        "../envs/corpus.yaml"
    shell:
        "python -m ser_pipeline prepare --spec {params.spec:q} --out {output} > {log} 2>&1"


rule folds:
    input:
        f"{R}/corpora/{{corpus}}/manifest.csv",
    output:
        f"{R}/corpora/{{corpus}}/folds/{{protocol}}.json",
    params:
        spec=fold_spec,
    log:
        f"{R}/logs/corpora/{{corpus}}/folds_{{protocol}}.log",
    conda:
        "../envs/corpus.yaml"
    shell:
        "python -m ser_pipeline folds --manifest {input} --spec {params.spec:q} --out {output} > {log} 2>&1"
