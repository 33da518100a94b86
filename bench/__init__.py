"""``make bench``: latency, capacity and memory of the Tongyeok server, measured against the direct path.

Modules: ``procs`` (child processes that always stop), ``loadgen`` (the
load-generator process, grpc.aio), ``cloud`` (the sweep with the Google and
OpenAI fakes), ``offline`` (pocketsphinx + Apertium), ``stats`` and
``report`` (table and JSON).
"""
