"""Compiled kernels (numba, with numpy fallbacks): the fused conductance update and its sums (``fused``), and
the closed-form neuron solves of ideal and Shockley diodes (``shockley``).  Only the backends and the learning
pieces call them; the model never does."""
