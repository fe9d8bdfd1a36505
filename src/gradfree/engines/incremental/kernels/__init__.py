"""Numba kernels of the incremental MLP engine, each taking the named tuples of :mod:`.state`.

* :mod:`.state` — :class:`~.state.Net`, :class:`~.state.Outputs`, :class:`~.state.Inputs`,
  :class:`~.state.Workspace` and the codes stored in them (no numba);
* :mod:`.activations` — the activations, as torch computes them;
* :mod:`.inputs` — the network input by feature, and the input a weight column multiplies;
* :mod:`.rows` — row losses, the general row-by-row try, and accepting a change;
* :mod:`.softmax` — the cross-entropy fast paths (output layer, last hidden layer) and :func:`try_values`,
  the entry point of every try;
* :mod:`.greedy_pass` — a whole greedy coordinate pass in one compiled call;
* :mod:`.entry` — what Python calls: the state as plain tuples, rebuilt as named tuples inside (numba types
  a named-tuple argument slowly).

Nothing is imported here, so that reading :mod:`.state` does not load numba.
"""
