"""cgroup access: :mod:`parse` (pure functions of file text) and :mod:`reader` (files only)."""
