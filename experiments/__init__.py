"""Thin absl trainers, one per method (see launch.py).

A package so that they launch as modules too:

  python -m experiments.sft --config=configs/sft/synthetic.py:debug \
      --workdir=/tmp/sft_debug

which is the same as `python experiments/sft.py ...` (each file then puts
the repository root on sys.path itself).
"""
