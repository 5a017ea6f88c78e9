"""Loading a legacy checkpoint (state-dict version < 2, no num_batches_tracked) sets the counter to 0 even
in a trained layer, as torch did before pytorch/pytorch#110850: a momentum=None layer then restarts its
cumulative average. Violates BN-LOAD-01."""
import torch

from dropnorm.zoo.build import layers

DEFECT = {"clause": "BN-LOAD-01", "summary": "a legacy checkpoint's missing counter is loaded as 0",
          "source": "https://github.com/pytorch/pytorch/issues/110361 (fixed by pytorch/pytorch#110850)"}


class _LegacyCounterZero:
    _version = 2  # the counter came with version 2: older state dicts have none

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=_LegacyCounterZero)
