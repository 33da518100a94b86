"""One Interpret stream's life: config, recognition, translation, events."""
