"""The message condition of DO-API-02, D2-API-02, AD-API-02, BN-API-01 and BN-API-02 (issue 24): an error
message names the argument as a word. The check it replaced, `"p" in str(e)`, passed any message with the
letter p in it; names_argument does not."""
import pytest

from dropnorm.properties._family import names_argument, p_names
from dropnorm.properties.test_batchnorm_eval import ARGUMENT_NAMES

P = ("p", "probabilit*", "dropout*")


@pytest.mark.parametrize("message", [
    "dropout probability has to be between 0 and 1, but got 1.1",      # torch.nn.Dropout (2.13.0)
    "p must be in [0, 1], got 1.1",                                     # dropnorm.zoo.scratch
    "[Dropout] The probability of zeroing must be in [0, 1)",          # probability as a word
    "Invalid value for argument P: -0.1",                               # case-insensitive
])
def test_messages_that_name_p(message):
    assert names_argument(message, *P)


@pytest.mark.parametrize("message", [
    "'<' not supported between instances of 'str' and 'int'",         # the vacuous pass: su-p-ported
    "invalid value",                                                    # ad_message_unnamed
    "invalid value: expected a number in the supported range",         # do_message_unnamed
    "input must be a floating point tensor",                            # 'input' and 'point' contain p
])
def test_messages_that_do_not_name_p(message):
    assert "p" in message or message == "invalid value"  # the old substring check passed all but the second
    assert not names_argument(message, *P)


def test_the_conventions_own_name_counts():
    """Keras, Flax and Haiku call the argument rate, ONNX ratio (spec/conventions.toml dropout_rate)."""
    assert not names_argument("Invalid value received for argument `rate`. Received: rate=1.1", *P)
    assert names_argument("Invalid value received for argument `rate`. Received: rate=1.1", *P, "rate")

    class Keras:  # conventions.of reads the convention the implementation declares
        convention = "keras"

    class Onnx:
        convention = "onnx"
    assert "rate" in p_names(Keras()) and "ratio" in p_names(Onnx()) and p_names(None) == P


@pytest.mark.parametrize("name,message,named", [
    ("momentum", "momentum must be in [0, 1], got 1.5", True),
    ("momentum", "invalid value", False),
    ("eps", "eps must be finite and > 0, got 0.0", True),                # dropnorm.zoo.scratch
    ("eps", "batch_norm eps must be positive during training", True),   # torch.nn.functional
    ("eps", "epsilon must be positive", True),                           # Keras's and Flax's name
    ("eps", "number of steps must be positive", False),                  # 'steps' contains eps
])
def test_batchnorm_argument_names(name, message, named):
    assert names_argument(message, *ARGUMENT_NAMES[name]) is named
