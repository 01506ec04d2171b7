"""ltx-trainer configs as ltxtune experiments: ``python -m ltxtune.convert their.yaml`` writes
``my_conf/experiment/their.yaml``, trained with ``python train.py --config-dir my_conf experiment=their``."""
