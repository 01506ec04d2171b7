"""Cut source videos at their shot boundaries into one clip per scene (``python -m ltxtune.data.scenes``)."""
