"""kiln's benchmark harness (run it through `bench/run`).

Modules, in the order a run uses them:
  util      running commands, timing them, statistics
  setup     apt packages, the rootless user, cached base images, the kiln binary
  cases     the benchmark cases: contexts, generated trees, one-file changes
  registry  a throwaway local docker-registry
  tools     one adapter per builder (kiln, buildah root/rootless, BuildKit via dockerd)
  floors    physical floors (tar|gzip, pigz, zstd, sha256sum, cp -a)
  runner    the scenario loop (cold, warm, incremental, export, push, pull)
  report    the terminal table and bench/RESULTS.md
"""
