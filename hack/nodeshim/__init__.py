"""The node shim: real cgroups, real load and the kubelet's resize behaviour for fake nodes.

kwok fakes nodes and pods, but presize's agent reads real cgroups and its controller needs the
kubelet's answers to ``pods/resize``. The shim plays the kubelet for a few fake nodes: every
pod bound to one gets cgroups at the kubelet's cgroupfs-driver paths on this machine, its
limits applied, a load process following the pod's ``presize.io/load`` annotation, and the
pod status a 1.35 kubelet would post (container IDs, restarts and OOM kills, resize
conditions).

Modules: :mod:`~hack.nodeshim.shim` (``NodeShim``, ``ShimConfig``), :mod:`~.patterns` (the
annotation schema), :mod:`~.load` (the load program), :mod:`~.resources` (resources to cgroup
values), :mod:`~.kubelet` (resize and status rules), :mod:`~.resize`, :mod:`~.pods`,
:mod:`~.node`, :mod:`~.cgroupfs`, :mod:`~.kube`. CLI: ``python -m hack.nodeshim --help``.

This package's ``__init__`` imports nothing: the load program runs as
``python -S -m hack.nodeshim.load`` inside each container cgroup and must stay small.
"""
