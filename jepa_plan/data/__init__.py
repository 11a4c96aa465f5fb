"""Episode data: the on-disk format (`episodes`) and the clip DataModule (`datamodule`)."""
