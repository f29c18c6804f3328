"""The trainer: fits the latency forecaster on history, exports it to ONNX,
checks the export and publishes it to the predictor (ace.v1.Trainer)."""
