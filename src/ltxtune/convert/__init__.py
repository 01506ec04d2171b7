"""ltx-trainer configs as ltxtune experiments: ``python -m ltxtune.convert their.yaml -o conf/experiment/x.yaml``."""
