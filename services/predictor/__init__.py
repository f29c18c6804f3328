"""The predictor: serves the active latency model with onnxruntime and keeps
the model versions on disk (protos/ace/v1/predictor.proto)."""
