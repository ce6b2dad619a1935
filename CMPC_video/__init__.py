"""CMPC for video (A2D Sentences): the model, its batches and its train/test script."""
