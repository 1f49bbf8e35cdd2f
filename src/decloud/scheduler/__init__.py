"""The scheduler: runs one workerpool (DESIGN.md sections 1 and 3, "Scheduler").

It follows the pool's deals on the chain, gives each task as many replicates as the
credibility rule needs, hands them to workers that pull work over HTTP, signs their
authorizations, and finalizes, reopens or claims the tasks, so that none passes its final
deadline silently.

- `state`: the task and replicate lifecycles as declared state machines without I/O;
- `policy`: how many replicates a task needs and which worker gets one (pure);
- `models`, `migrations`, `store`, `engine`: the state in SQL, changed one locked
  transaction per event;
- `chain`, `watcher`, `service`: the chain side and the loop;
- `api`, `schemas`, `sessions`, `metrics`, `cli`: the HTTP API and `decloud scheduler run`.

docs/scheduler.md describes the whole.
"""
