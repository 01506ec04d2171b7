"""Fill in missing captions with a vision-language model (``python -m ltxtune.data.captioning``)."""
