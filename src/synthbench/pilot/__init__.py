"""The go/no-go pilot: a cheap first slice of the generation, scored on real train data, with a verdict."""
