"""The demo: presize's main job, live, on a real local control plane with real cgroups.

``python -m hack.demo [--minutes 6] [--report out/demo.html]`` starts the local cluster
(:mod:`hack.cluster.localcluster`) and the node shim (:mod:`hack.nodeshim`), runs presize's
controller, one agent per shim node and the webhook as local processes, deploys a few workloads
with different real usage patterns, prints a timeline of what presize does, and ends with a
summary table and an HTML report of allocated versus used. It stops everything it started, by
pid, also on Ctrl-C or failure.

``--real-node`` runs the same scenario on one real kubelet node (:mod:`hack.cluster.realnode`)
with presize installed by its Helm chart, the workloads as real pods running the shim's load
program, and says so in its summary and report.

Modules: :mod:`~hack.demo.workloads` (what is deployed, and the time compression),
:mod:`~hack.demo.stack` (start-up and teardown), :mod:`~hack.demo.procs` (child processes and
the state file), :mod:`~hack.demo.observe` (timeline and usage series), :mod:`~hack.demo.report`
(summary, HTML, results JSON), :mod:`~hack.demo.run` (the script); for the real node,
:mod:`~hack.demo.realstack` (images, node, ``helm install``, teardown) and
:mod:`~hack.demo.realworkloads` (the workloads as real pods); :mod:`~hack.demo.cgroups` (where
each kind of node puts a container's cgroups).
"""
