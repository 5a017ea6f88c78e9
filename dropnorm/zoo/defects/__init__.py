"""One module per defect: a correct implementation with exactly one named error."""
