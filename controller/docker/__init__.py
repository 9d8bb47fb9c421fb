"""The Docker orchestrator: Docker Swarm services and standalone Docker containers.

Modules, outermost first:

* :mod:`controller.docker.orchestrator` — :class:`DockerOrchestrator`, the
  :class:`controller.orchestrator.Orchestrator` for Docker: a cached snapshot refreshed from the
  engine's event stream, and the actions (in-place container update, Swarm service update,
  placement update, PreviousSpec rollback).
* :mod:`controller.docker.views` — pure: Engine API answers → ``PodView``/``NodeView``/
  ``WorkloadView``, and the label rules (opt-in, namespace, mode).
* :mod:`controller.docker.bodies` — pure: new resources → container update bodies and new
  service specs.
* :mod:`controller.docker.engine` — a small typed async client of the Engine API over its
  unix socket (aiohttp), with errors mapped onto :mod:`controller.errors`.
* :mod:`controller.docker.store` — :class:`FileProfileStore`, profiles as JSON files.

``docs/docker.md`` describes the mapping and how to run it.
"""
