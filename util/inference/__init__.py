"""CMPC on your own inputs: predict mode, the explain figure, the SavedModel export and the
web demo, all on one Predictor."""
