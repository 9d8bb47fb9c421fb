"""The presize mutating admission webhook: pure ``mutate`` over an in-memory snapshot."""
