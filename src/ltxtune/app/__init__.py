"""Entry points: the Hydra apps of ``train.py`` and ``preprocess.py``, the dry-run estimate, the benchmark, the
environment check."""

# The Hydra configs ship inside the package (src/ltxtune/conf/): every install, editable or a wheel, composes the
# configs of the code it runs. A user's own folder joins them with `hydra.searchpath=[file://my_conf]`.
CONFIG_MODULE = "ltxtune.conf"
