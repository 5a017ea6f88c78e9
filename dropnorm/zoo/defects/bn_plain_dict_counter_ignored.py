"""A checkpoint without torch's `_metadata` (a plain dict, e.g. a dict comprehension stripping a `module.` prefix)
is migrated as a legacy one whether or not it holds num_batches_tracked: the layer keeps its own counter and
drops the saved one (blind probe round 2, bn1d_load_plain_dict). Violates BN-LOAD-01."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-LOAD-01", "summary": "a plain-dict checkpoint's num_batches_tracked is replaced by the layer's own",
          "source": "plausible: torch's version-None migration in _NormBase._load_from_state_dict without its "
                    "`key not in state_dict` check (benchmarks/blind_probes/round2/bn1d_load_plain_dict.py)"}


class _PlainDictCounterIgnored:
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        if local_metadata.get("version", None) is None and self.num_batches_tracked is not None:
            state_dict[prefix + "num_batches_tracked"] = self.num_batches_tracked.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_PlainDictCounterIgnored)
