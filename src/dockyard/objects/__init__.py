"""The object model: one module per kind (defaults, validation) and shared helpers.

- resources: the registry of served resources (group, version, kind, plural, short names).
- kinds: dispatch from a kind to its KindHandlers, and the write strategy (status, generation).
- validation: FieldError and the shared rules (names, labels, metadata).
- selectors: label and field selectors; quantity: exact resource quantities;
  meta: timestamps, kubectl durations, owner references; scale: the autoscaling/v1 Scale view;
  workload: rules shared by Deployments and ReplicaSets; volumes: pod volume sources and
  downward API references; affinity: node/pod affinity and topology spread constraints.
- one module per kind: pod, node, namespace, service, endpoints, event, configmap, secret,
  deployment, replicaset, lease, hpa, pdb, priorityclass.

Nothing here imports another part of dockyard: every layer may use the object model.
"""
