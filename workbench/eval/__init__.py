"""Evaluation: generate predictions of base vs adapters, score them, judge them, rate them.

An eval is a directory, ``<workspace>/evals/<eval-id>/`` (see :mod:`workbench.eval.store`),
written by a detached generator process and read by the Eval pane and the CLI.
"""
