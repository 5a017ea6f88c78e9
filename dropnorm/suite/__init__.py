"""What runs inside pytest: the plugin, the scoped run state, the traced path, checks, judging, draws.

  plugin         the pytest11 plugin: --impl, hypothesis profiles, clause bookkeeping
  recorder       one JSON line per test outcome into the results directory
  traced         the one traced path between the tests and an implementation
  checks         `ph`: assertion helpers, every check names its clause
  judging        every clause of a test judged on its own
  strategies     `hh`: what the spec lets vary; bn_setup, inputs: the drawn cases
  input_classes  errors isolated by input class
  isolation      global state restored after every test
  profiles       hypothesis profiles (quick, ci, thorough)
  reproduce      standalone reproduction scripts from the trace
Nothing here runs in the parent `dropnorm audit` process except profiles and reproduce's helpers.
"""
