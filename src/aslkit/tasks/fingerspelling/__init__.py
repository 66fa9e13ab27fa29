"""asl-fingerspelling (Google - ASL Fingerspelling Recognition): phrases, normalised total Levenshtein; the plug-in
is ``plugin.PLUGIN``.

``prepare`` (one shard per wide landmark parquet), ``objective`` (CTC over variable-length batches, the sampler with
outer CutMix), ``frames`` (frame selection shared by training and the exported graph), ``augment`` (F1/F5's
transforms), ``ctc_ops`` (CTC loss and greedy decoding), ``export`` (the grader graph with in-graph decoding),
``grade`` (the grader clone), ``evaluate`` (metric and report), ``families/`` (the model families: ``ctc``).
"""
