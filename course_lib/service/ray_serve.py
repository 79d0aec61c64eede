"""Scale-out on Ray Serve: the same ``/rerank`` API as N replicas, batched by Serve itself.

When one machine's cores are not enough, do not build a cluster by hand: Ray Serve runs the
deployment as ``num_replicas`` copies (actors) behind one HTTP proxy, spreads requests over them
and, with ``@serve.batch``, merges concurrent requests into one model pass per replica — the
micro-batching of :mod:`course_lib.service.core`, done by the engine.

Locally: ``course-lib serve --ray --replicas 2`` (binds 127.0.0.1).  On a cluster, the same
application is described in a Serve config file and deployed with ``serve deploy``; see
:func:`serve_config` for the file this module would run, and notebook 07.  Deployed that way it
reads its API key from ``$COURSE_API_KEY`` on every node and refuses to build without one.

What the Ray version keeps from the single-process service: ``POST /rerank`` with the same request
validation, size limits (413), API key (401), result shape, and request batching (Serve's).  What it
leaves out, to stay a small example: the pair cache, deadlines (``deadline_ms`` is accepted and
ignored: answers are never degraded), the 503 queue limit (Serve has its own ``max_ongoing_requests``
and ``max_queued_requests`` settings), ``/search`` and ``/metrics`` (Serve exports its own metrics).
"""

# no ``from __future__ import annotations`` here: FastAPI reads the route annotations (RerankBody) in the
# Ray replica, where a string naming a class local to build_app could not be resolved
import asyncio

from course_lib.scorers.base import rank_results
from course_lib.scorers.cross_encoder import CrossEncoderScorer
from course_lib import settings
from course_lib.service.config import ServiceConfig


def build_app(config: ServiceConfig = ServiceConfig(), max_batch_size: int = 16, limits=None):
    """A Ray Serve application (``serve.run`` it) with ``POST /rerank`` and ``GET /health``.

    ``config`` (:class:`~course_lib.service.config.ServiceConfig`) gives the model, the replicas, the
    API key and how long a batch waits (``max_wait_ms``).  Each replica loads the model once;
    ``@serve.batch`` merges up to ``max_batch_size`` concurrent requests into one scoring call.
    Request validation and limits are the single-process app's (:mod:`course_lib.service.app`).
    """
    model, replicas, api_key = config.model, config.replicas, config.api_key
    batch_wait_timeout_s = config.max_wait_ms / 1000.0
    from fastapi import Depends, FastAPI
    from ray import serve

    from course_lib.service.app import Limits, RerankBody, cut_long_passages, install_errors, key_checker, size_error

    limits = limits or Limits()
    api = FastAPI(title="course_lib reranking service (Ray Serve)", dependencies=[Depends(key_checker(api_key))])
    install_errors(api)

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 0})
    @serve.ingress(api)
    class RerankDeployment:
        def __init__(self, model_name):
            from course_lib.env import configure

            configure(offline=True, quiet=True)
            self.scorer = CrossEncoderScorer(model_name)
            self.fingerprint = self.scorer.fingerprint()

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)
        async def score(self, jobs: list[tuple[str, list[str]]]) -> list[list[float]]:
            pairs = [(q, t) for q, texts in jobs for t in texts]
            logits = await asyncio.to_thread(self.scorer.score_pairs, pairs)
            out, start = [], 0
            for _, texts in jobs:
                out.append([float(z) for z in logits[start : start + len(texts)]])
                start += len(texts)
            return out

        @api.post("/rerank")
        async def rerank(self, body: RerankBody):
            cands = [c.model_dump(exclude_none=True) for c in body.candidates]
            err = size_error(limits, body.query, cands)
            if err is not None:
                return err
            cands, cut = cut_long_passages(limits, cands)
            if not cands:
                return {"results": [], "degraded": False}
            logits = await self.score((body.query, [c["text"] for c in cands]))
            ranked = rank_results(cands, logits, self.scorer.probabilities(logits), top_k=body.top_k)
            return {"results": ranked, "degraded": False, **({"truncated": cut} if cut else {})}

        @api.get("/health")
        async def health(self):
            replica = serve.get_replica_context().replica_id.unique_id
            return {"status": "ok", "model": self.fingerprint, "backend": "ray-serve", "replica": replica}

    return RerankDeployment.bind(model)


def start(config: ServiceConfig = ServiceConfig(), **batch):
    """Start Ray locally (this machine's cores only, no dashboard) and run the app on the config's
    host and port.  Off loopback an API key is required (:meth:`ServiceConfig.resolved_api_key`)."""
    config = config.replace(api_key=config.resolved_api_key())
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(build_app(config, **batch), name="reranker", route_prefix="/")


def stop() -> None:
    """Shut Serve and Ray down."""
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        if ray.is_initialized():
            ray.shutdown()


def serve_config(replicas: int = 2, host: str = "0.0.0.0", port: int = 8000) -> str:
    """The Serve config (YAML) that deploys this application on a running Ray cluster
    (``serve deploy config.yaml``); each node needs ``course_lib`` installed."""
    return f"""# serve deploy this file on a Ray cluster (ray start --head on one node, ray start --address=... on the others);
# export COURSE_API_KEY=... on every node first: the app refuses to build without it
proxy_location: EveryNode
http_options:
  host: {host}          # behind your load balancer; require an API key or a private network
  port: {port}
applications:
  - name: reranker
    route_prefix: /
    import_path: course_lib.service.ray_serve:app
    deployments:
      - name: RerankDeployment
        num_replicas: {replicas}   # or autoscaling_config: {{min_replicas: 1, max_replicas: 8, target_ongoing_requests: 4}}
        ray_actor_options: {{num_cpus: 2}}
"""


def __getattr__(name):  # ``import_path: course_lib.service.ray_serve:app`` in a Serve config
    if name == "app":

        key = settings.api_key()
        if not key:
            raise RuntimeError("set COURSE_API_KEY on every node before `serve deploy`: the deployment listens "
                               "beyond loopback and requires a key on every request")
        return build_app(ServiceConfig(host="0.0.0.0", api_key=key))
    raise AttributeError(name)
