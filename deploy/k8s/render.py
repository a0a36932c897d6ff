"""Render Kubernetes manifests for peerlearn (standard library only; pipe the output to kubectl).

    python3 deploy/k8s/render.py group [--name G] [--peers 4] [--task room-6] [--steps 6000] [--seed 0]
        A group spread over nodes: a headless Service and a StatefulSet of peers (pod i is `<sts>-i`,
        DNS `<sts>-i.<service>`), and a Job whose orchestrator drives exactly those DNS names.
    python3 deploy/k8s/render.py sweep --tasks room-6,room-21 --seeds 0,1,2 [--peers 4] [--parallelism 3]
        Many independent groups as one Indexed Job: each pod runs one whole group (`peerlearn run`,
        peers as processes in the pod) for one (task, seed); Kubernetes schedules, retries and limits.
    python3 deploy/k8s/render.py pvc [--size 10Gi]
        The results claim every Job above mounts at /results.

The files next to this script are its default output (`make`-free: a test checks they are equal), so
`kubectl apply -f deploy/k8s/` runs the default group. Images: --image (default peerlearn:latest, push
it to a registry your cluster can pull from).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PORT = 50051
RESULTS_CLAIM = "peerlearn-results"
TLS_SECRET = "peerlearn-tls"
LABELS = "app.kubernetes.io/name: peerlearn"

POD_SECURITY = """\
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001"""
CONTAINER_SECURITY = """\
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: [ALL]"""


def names(group: str) -> tuple[str, str, str]:
    """(service, statefulset, job) of a group; the default group has the short names."""
    prefix = f"{group}-" if group else ""
    return f"{prefix}peers", f"{prefix}peer", f"{prefix}orchestrator"


def peer_addresses(group: str, peers: int) -> list[str]:
    service, sts, _ = names(group)
    return [f"{sts}-{i}.{service}:{PORT}" for i in range(peers)]


def group(name: str = "", peers: int = 4, task: str = "room-6", steps: int = 6000, seed: int = 0,
          image: str = "peerlearn:latest", cpu: str = "1", memory: str = "1Gi") -> str:
    service, sts, job = names(name)
    instance = name or "peerlearn"
    addresses = ",".join(peer_addresses(name, peers))
    run_name = name or f"{task}-peer-s{seed}"
    return f"""\
# A peer group spread over the cluster's nodes: rendered by
#   python3 deploy/k8s/render.py group --name '{name}' --peers {peers} \\
#     --task {task} --steps {steps} --seed {seed}
# Peer i is pod {sts}-i, reachable as {sts}-i.{service}:{PORT} (headless Service, stable DNS).
apiVersion: v1
kind: Service
metadata:
  name: {service}
  labels:
    {LABELS}
    app.kubernetes.io/instance: {instance}
    app.kubernetes.io/component: peer
spec:
  clusterIP: None
  selector:
    {LABELS}
    app.kubernetes.io/instance: {instance}
    app.kubernetes.io/component: peer
  ports:
    - name: grpc
      port: {PORT}
      targetPort: grpc
      appProtocol: grpc
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {sts}
  labels:
    {LABELS}
    app.kubernetes.io/instance: {instance}
    app.kubernetes.io/component: peer
spec:
  serviceName: {service}
  replicas: {peers}
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      {LABELS}
      app.kubernetes.io/instance: {instance}
      app.kubernetes.io/component: peer
  template:
    metadata:
      labels:
        {LABELS}
        app.kubernetes.io/instance: {instance}
        app.kubernetes.io/component: peer
    spec:
{POD_SECURITY}
      terminationGracePeriodSeconds: 30
      affinity:
        podAntiAffinity:  # spread the peers over nodes where the cluster has room
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    app.kubernetes.io/instance: {instance}
                    app.kubernetes.io/component: peer
      containers:
        - name: peer
          image: {image}
          # Peer id = pod name; seed = group seed * 1000 + ordinal (as `peerlearn run` seeds its peers).
          command: ["sh", "-c"]
          args:
            - export PEERLEARN_PEER_ID="$HOSTNAME"
              PEERLEARN_SEED=$$(( GROUP_SEED * 1000 + ${{HOSTNAME##*-}} ));
              exec peerlearn peer
          env:
            - name: GROUP_SEED
              value: "{seed}"
            - name: PEERLEARN_TASK
              value: "{task}"
            - name: PEERLEARN_TOTAL_STEPS
              value: "{steps}"
            - name: PEERLEARN_HOST
              value: "0.0.0.0"
            - name: PEERLEARN_PORT
              value: "{PORT}"
            - name: PEERLEARN_CHECKPOINT_DIR
              value: /checkpoints
            # Plaintext gRPC inside the cluster network. TLS material is mounted below from the
            # Secret {TLS_SECRET}; the peer's TLS flags come with the security work (README).
            - name: PEERLEARN_ALLOW_INSECURE
              value: "1"
          ports:
            - name: grpc
              containerPort: {PORT}
          startupProbe:  # torch import and learner construction take a few seconds
            grpc:
              port: {PORT}
            periodSeconds: 2
            failureThreshold: 60
          readinessProbe:
            grpc:
              port: {PORT}
            periodSeconds: 5
          livenessProbe:
            grpc:
              port: {PORT}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            requests:
              cpu: "{cpu}"
              memory: {memory}
            limits:
              memory: 2Gi
{CONTAINER_SECURITY}
          volumeMounts:
            - name: checkpoints
              mountPath: /checkpoints
            - name: tls
              mountPath: /etc/peerlearn/tls
              readOnly: true
      volumes:
        - name: tls
          secret:
            secretName: {TLS_SECRET}
            optional: true
  volumeClaimTemplates:
    - metadata:
        name: checkpoints
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: 1Gi
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {job}
  labels:
    {LABELS}
    app.kubernetes.io/instance: {instance}
    app.kubernetes.io/component: orchestrator
spec:
  backoffLimit: 0  # a failed group is a result to look at, not to rerun silently
  ttlSecondsAfterFinished: 604800
  template:
    metadata:
      labels:
        {LABELS}
        app.kubernetes.io/instance: {instance}
        app.kubernetes.io/component: orchestrator
    spec:
      restartPolicy: Never
{POD_SECURITY}
      initContainers:
        - name: wait-for-peers  # like compose's depends_on: service_healthy
          image: {image}
          command: ["sh", "-c"]
          args:
            - IFS=,; for a in $PEERS; do until peerlearn-healthcheck "$a"; do sleep 2; done; done
          env:
            - name: PEERS
              value: "{addresses}"
{CONTAINER_SECURITY}
      containers:
        - name: orchestrator
          image: {image}
          args:
            - orchestrate
            - --peers
            - "{addresses}"
            - --task
            - "{task}"
            - --steps
            - "{steps}"
            - --seed
            - "{seed}"
            - --out
            - /results
            - --name
            - "{run_name}"
            - --no-progress
          env:
            - name: PEERLEARN_ALLOW_INSECURE
              value: "1"
          resources:
            requests:
              cpu: "1"
              memory: 1Gi
            limits:
              memory: 2Gi
{CONTAINER_SECURITY}
          volumeMounts:
            - name: results
              mountPath: /results
            - name: tls
              mountPath: /etc/peerlearn/tls
              readOnly: true
      volumes:
        - name: results
          persistentVolumeClaim:
            claimName: {RESULTS_CLAIM}
        - name: tls
          secret:
            secretName: {TLS_SECRET}
            optional: true
"""


def sweep(tasks: list[str], seeds: list[int], peers: int = 4, steps: int = 6000, parallelism: int = 2,
          name: str = "peerlearn-sweep", image: str = "peerlearn:latest", mode: str = "peer") -> str:
    cells = [(t, s) for t in tasks for s in seeds]
    return f"""\
# Independent groups (tasks x seeds = {len(cells)}) as one Indexed Job: pod k runs group k with its peers
# as local processes (`peerlearn run`). Rendered by
#   python3 deploy/k8s/render.py sweep --name {name} --tasks {",".join(tasks)} \\
#     --seeds {",".join(map(str, seeds))} --peers {peers} --steps {steps} \\
#     --parallelism {parallelism} --mode {mode}
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels:
    {LABELS}
    app.kubernetes.io/instance: {name}
    app.kubernetes.io/component: sweep
spec:
  completionMode: Indexed
  completions: {len(cells)}
  parallelism: {parallelism}
  backoffLimitPerIndex: 1
  ttlSecondsAfterFinished: 604800
  template:
    metadata:
      labels:
        {LABELS}
        app.kubernetes.io/instance: {name}
        app.kubernetes.io/component: sweep
    spec:
      restartPolicy: Never
{POD_SECURITY}
      containers:
        - name: group
          image: {image}
          command: ["sh", "-c"]
          # JOB_COMPLETION_INDEX k -> task TASKS[k / len(SEEDS)], seed SEEDS[k % len(SEEDS)]
          args:
            - set -- $TASKS; n_seeds=$(echo $SEEDS | wc -w);
              shift $$(( JOB_COMPLETION_INDEX / n_seeds )); task=$1;
              set -- $SEEDS; shift $$(( JOB_COMPLETION_INDEX % n_seeds )); seed=$1;
              exec peerlearn run --task "$task" --seed "$seed" --peers {peers} --steps {steps} --mode {mode}
              --out /results --name "$task-{mode}-s$seed" --no-progress
          env:
            - name: TASKS
              value: "{" ".join(tasks)}"
            - name: SEEDS
              value: "{" ".join(map(str, seeds))}"
          resources:
            requests:
              cpu: "{peers}"
              memory: {peers}Gi
            limits:
              memory: {2 * peers}Gi
{CONTAINER_SECURITY}
          volumeMounts:
            - name: results
              mountPath: /results
      volumes:
        - name: results
          persistentVolumeClaim:
            claimName: {RESULTS_CLAIM}
"""


def pvc(size: str = "10Gi") -> str:
    return f"""\
# Results of every group and sweep (run folders under /results). ReadWriteMany lets several Jobs on
# different nodes write at once; with a ReadWriteOnce-only storage class, run one Job at a time.
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {RESULTS_CLAIM}
  labels:
    {LABELS}
spec:
  accessModes: [ReadWriteMany]
  resources:
    requests:
      storage: {size}
"""


DEFAULTS = {"results-pvc.yaml": lambda: pvc(), "group.yaml": lambda: group(),
            "sweep-job.yaml": lambda: sweep(["room-6", "room-21"], [0, 1, 2])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    g = sub.add_parser("group", help="Service + StatefulSet of peers + orchestrator Job")
    g.add_argument("--name", default="", help="group name, prefixes every object (default: none)")
    g.add_argument("--peers", type=int, default=4)
    g.add_argument("--task", default="room-6")
    g.add_argument("--steps", type=int, default=6000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--image", default="peerlearn:latest")
    s = sub.add_parser("sweep", help="Indexed Job: one group per (task, seed)")
    s.add_argument("--name", default="peerlearn-sweep")
    s.add_argument("--tasks", default="room-6")
    s.add_argument("--seeds", default="0,1,2")
    s.add_argument("--peers", type=int, default=4)
    s.add_argument("--steps", type=int, default=6000)
    s.add_argument("--mode", default="peer")
    s.add_argument("--parallelism", type=int, default=2)
    s.add_argument("--image", default="peerlearn:latest")
    v = sub.add_parser("pvc", help="the results PersistentVolumeClaim")
    v.add_argument("--size", default="10Gi")
    d = sub.add_parser("defaults", help="rewrite the manifests next to this script")
    d.add_argument("--dir", default=str(Path(__file__).parent))
    args = p.parse_args(argv)
    if args.what == "group":
        text = group(args.name, args.peers, args.task, args.steps, args.seed, args.image)
    elif args.what == "sweep":
        text = sweep([t for t in args.tasks.split(",") if t], [int(x) for x in args.seeds.split(",") if x],
                     args.peers, args.steps, args.parallelism, args.name, args.image, args.mode)
    elif args.what == "pvc":
        text = pvc(args.size)
    else:
        for file, make in DEFAULTS.items():
            (Path(args.dir) / file).write_text(make())
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
