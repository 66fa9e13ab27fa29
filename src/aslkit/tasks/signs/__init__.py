"""asl-signs (Google - Isolated Sign Language Recognition): 250 signs, accuracy; the plug-in is ``plugin.PLUGIN``.

``prepare`` (the sharded cache of the long-format parquets), ``objective`` (cross-entropy, mixup, the sampler),
``graph`` (a run as one grader-input module), ``ensemble`` (one-file ensembles), ``export`` (what conversion needs),
``grade`` (the grader clone), ``evaluate`` (the OOF report), ``families/`` (the model zoo).
"""
