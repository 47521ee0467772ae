"""The embedded default: ``kubetune run job.yaml`` without a cluster (processes for pods, files for servers)."""

from kubetune.local.runner import LocalRunner, RunOptions, summary

__all__ = ["LocalRunner", "RunOptions", "summary"]
