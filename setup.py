"""jaxreason: reasoning language models and world-model imitation in JAX."""

from setuptools import find_packages, setup

setup(
    name='jaxreason',
    version='0.1.0',
    description=('JAX/Flax research code for reasoning language models '
                 '(SFT, GRPO, DPO, verifiers, test-time search) and '
                 'world-model imitation.'),
    python_requires='>=3.10',
    packages=find_packages(include=['jaxreason', 'jaxreason.*']),
    install_requires=[
        'jax>=0.10.0,<0.11',
        'flax>=0.12.0,<0.13',
        'optax>=0.2.5',
        'orbax-checkpoint>=0.12.0,<0.13',
        'grain>=0.2.12',
        'ml-collections>=1.0',
        'absl-py',
        'numpy>=1.26',
        'safetensors>=0.4',
        'ml-dtypes',
        'protobuf',
        'sentencepiece>=0.2',
        'tokenizers>=0.20',
        'tensorboardX',
        'matplotlib',
        'math-verify',
        'sympy',
        # SMT backend of the subgoal prover (jaxreason/prover).
        'z3-solver',
    ],
    extras_require={
        # Parity tests use Hugging Face transformers on a CPU torch build.
        'test': [
            'pytest', 'pytest-xdist', 'chex', 'transformers>=4.45',
            'torch==2.13.0',
            # The quickstart notebook runs in the suite (tests/recipes/).
            'nbclient', 'nbformat', 'ipykernel',
        ],
        # DeepMind Control Suite for world-model imitation. dm_control 1.0.50
        # fails on mujoco 4.0 (MjModel.flex_vertedge), so both are pinned.
        'envs': ['dm-control==1.0.50', 'mujoco==3.17.0'],
        # Ahead-of-time compilation for TPU topologies on a CPU host.
        'tpu': ['jax[tpu]>=0.10.0,<0.11'],
        # Peer samplers for tools/bench_decode.py.
        'bench': ['google-tunix', 'transformers>=4.45', 'torch==2.13.0'],
    },
)
