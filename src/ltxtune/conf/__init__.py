"""ltxtune's Hydra configs (``train.yaml``, ``preprocess.yaml`` and one folder per config group), shipped with the
package so that every install, editable or not, composes the configs of the code it runs."""
