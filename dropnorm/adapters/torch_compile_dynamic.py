"""--impl torch-compile-dynamic: see dropnorm/adapters/torch_paths.py and docs/execution-paths.md."""
from dropnorm.adapters.torch_paths import load_path


def load():
    return load_path("torch-compile-dynamic")
