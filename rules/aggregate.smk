# Aggregation stage: tables beside the papers' numbers, scaling curves, confusion matrices.


rule table:
    input:
        experiment_runs,
    output:
        md=report(f"{R}/tables/{{experiment}}.md", caption="../workflow/report/table.rst", category="Tables"),
        csv=f"{R}/tables/{{experiment}}.csv",
    params:
        spec=experiment_spec,
    log:
        f"{R}/logs/tables/{{experiment}}.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m ser_pipeline table --spec {params.spec:q} --out-md {output.md:q} --out-csv {output.csv:q} "
        "{input:q} > {log:q} 2>&1"


rule scaling_plot:
    input:
        experiment_runs,
    output:
        png=report(f"{R}/plots/{{experiment}}.png", caption="../workflow/report/scaling.rst", category="Scaling curves"),
        svg=f"{R}/plots/{{experiment}}.svg",
    params:
        spec=plot_spec,
    log:
        f"{R}/logs/plots/{{experiment}}.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m ser_pipeline plot --kind scaling --spec {params.spec:q} --out {output.png:q} --out {output.svg:q} "
        "{input:q} > {log:q} 2>&1"


rule confusion_plot:
    input:
        experiment_runs,
    output:
        report(f"{R}/plots/{{experiment}}_confusion.png", caption="../workflow/report/confusion.rst",
               category="Confusion matrices"),
    params:
        spec=plot_spec,
    log:
        f"{R}/logs/plots/{{experiment}}_confusion.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m ser_pipeline plot --kind confusion --spec {params.spec:q} --out {output:q} {input:q} > {log:q} 2>&1"


rule summary:
    input:
        [f"{R}/tables/{e}.md" for e in config["experiments"]],
    output:
        report(f"{R}/summary.md", caption="../workflow/report/summary.rst", category="Summary"),
    params:
        spec=lambda wc: as_json(sp.summary_spec(config)),
    log:
        f"{R}/logs/summary.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m ser_pipeline summary --spec {params.spec:q} --out {output:q} {input:q} > {log:q} 2>&1"


rule crosscorpus:
    input:
        unpack(crosscorpus_inputs),
    output:
        f"{R}/crosscorpus/{{experiment}}/{{model}}/s{{seed}}/{{fold}}.json",
    params:
        spec=crosscorpus_spec,
    log:
        f"{R}/logs/crosscorpus/{{experiment}}/{{model}}/s{{seed}}/{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/crosscorpus/{{experiment}}/{{model}}/s{{seed}}/{{fold}}.tsv"
    conda:
        "../envs/train.yaml"
    group:
        "train"
    threads: 1
    shell:
        "python -m ser_pipeline crosscorpus --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule speaker_plot:
    input:
        experiment_runs,
    output:
        report(f"{R}/plots/{{experiment}}_speakers.png", caption="../workflow/report/speakers.rst",
               category="Per-speaker scores"),
    params:
        spec=plot_spec,
    log:
        f"{R}/logs/plots/{{experiment}}_speakers.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m ser_pipeline plot --kind speakers --spec {params.spec:q} --out {output:q} {input:q} > {log:q} 2>&1"


rule probe:
    input:
        probe_inputs,
    output:
        md=report(f"{R}/tables/{{experiment}}_speaker_probe.md", caption="../workflow/report/probe.rst",
                  category="Speaker probe"),
        png=report(f"{R}/plots/{{experiment}}_tsne.png", caption="../workflow/report/probe.rst",
                   category="Speaker probe"),
    params:
        spec=probe_spec,
    log:
        f"{R}/logs/plots/{{experiment}}_probe.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m ser_pipeline probe --spec {params.spec:q} --out-md {output.md:q} --out-png {output.png:q} "
        "> {log:q} 2>&1"
