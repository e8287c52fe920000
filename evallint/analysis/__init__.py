"""Analysis: what the steps of a control-flow graph mean, and the mode/grad dataflow over them."""
