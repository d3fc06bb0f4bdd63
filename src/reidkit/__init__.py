"""reidkit: person and vehicle re-identification.

The five-call Python API::

    import reidkit
    cfg = reidkit.load_config("configs/top_db_net/market1501.yaml", ["data.root=DATA"])
    run = reidkit.train(cfg)                                  # what `reidkit train` does
    reidkit.test(cfg, run.checkpoint)                         # what `reidkit test` does

and the pieces underneath::

    dataset = reidkit.build_dataset("market1501", root="DATA")
    model = reidkit.build_model("top_db_net", num_classes=dataset.num_train_pids)
    reidkit.load_weights(model, "checkpoint.pth")
    cmc, mAP, mINP = reidkit.evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids)
"""
from reidkit.utils.lazy import lazy_attributes

__version__ = "0.1.0"

# Heavy submodules (torch) are imported on first use so that `reidkit --help` stays instant.
_LAZY = {
    "build_dataset": "reidkit.data",
    "build_model": "reidkit.models",
    "load_weights": "reidkit.models.weights",
    "save_checkpoint": "reidkit.engine.checkpoint",
    "load_config": "reidkit.config",
    "evaluate_rank": "reidkit.metrics",
    "re_ranking": "reidkit.metrics",
    "train": "reidkit.engine.launch",
    "test": "reidkit.engine.launch",
    "extract": "reidkit.engine.launch",
    "Gallery": "reidkit.gallery.base",
    "Embedder": "reidkit.deploy.embedder",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = sorted(_LAZY) + ["__version__"]
