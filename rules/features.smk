# Feature stage: one Zarr store per (corpus, feature config), extracted once for the
# utterances any experiment on the corpus uses.


rule extract:
    input:
        f"{R}/corpora/{{corpus}}/utterances.csv",
    output:
        directory(f"{R}/features/{{corpus}}/{{feature}}.zarr"),
    params:
        spec=feature_spec,
        device=config["device"],
    log:
        f"{R}/logs/features/{{corpus}}/{{feature}}.log",
    benchmark:
        f"{R}/benchmarks/features/{{corpus}}/{{feature}}.tsv"
    conda:
        "../envs/features.yaml"
    # One core unless the extractor keeps several busy (wav2vec, BERT), and then at most half
    # the machine's (config.half_the_cores): extractions and training jobs run side by side.
    threads: feature_threads
    # Ahead of any ready training job: every feature store unlocks many training jobs, and
    # a store extracted last leaves its jobs (the longest ones, too) for the end of the run.
    priority: 20
    resources:
        gpu=feature_uses_gpu,
        mem_mb=8000,
        runtime=240,
    shell:
        "python -m ser_pipeline extract --manifest {input:q} --spec {params.spec:q} --out {output:q} "
        "--device {params.device:q} --threads {threads} > {log:q} 2>&1"
