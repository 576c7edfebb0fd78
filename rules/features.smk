# Feature stage: one Zarr store per (corpus, feature config), extracted once.


rule extract:
    input:
        f"{R}/corpora/{{corpus}}/manifest.csv",
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
    threads: 2
    resources:
        gpu=feature_uses_gpu,
        mem_mb=8000,
        runtime=240,
    shell:
        "python -m ser_pipeline extract --manifest {input} --spec {params.spec:q} --out {output} "
        "--device {params.device} --threads {threads} > {log} 2>&1"
