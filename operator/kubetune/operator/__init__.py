"""The Kubernetes shell: kopf handlers that observe TrainingJobs and their pods, call the core, and act.

``handlers`` registers thin kopf handlers; ``reconcile`` is one level-triggered pass; ``adapter`` is the only module
that talks to the Kubernetes API; ``resources`` builds pods and services (pure); ``observe`` reads pods back into
the core's vocabulary (pure).
"""
