"""DeepAnalyze recipe pipeline: the importable logic behind the Snakemake rules."""
