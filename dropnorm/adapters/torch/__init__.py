"""torch's adapters, together because they share one layer class (nn.TorchLayer):

  nn.py                  --impl torch (torch.nn) and torch-module:TARGET (a user's torch.nn-compatible classes)
  paths.py               torch's own layers along other execution paths (functional, compile, autocast,
                         inference mode; docs/execution-paths.md)
  export_onnxruntime.py  --impl torch-export-onnxruntime: the layers exported to ONNX and run in onnxruntime
"""
