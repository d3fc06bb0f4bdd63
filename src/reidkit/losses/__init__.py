"""Losses: label-smoothed cross-entropy, batch-hard triplet (+ its miner), and build_criterion, which reads
which losses apply to which stream from the model's declaration; AITL and the attribute BCE for video models
with attribute heads (build_model_criterion picks the criterion a model trains with)."""
from reidkit.losses.aitl import AITLCriterion, AITLLoss, build_model_criterion
from reidkit.losses.attribute import AttributeBCELoss
from reidkit.losses.base import LOSSES, LossOptions
from reidkit.losses.criterion import Criterion, build_criterion
from reidkit.losses.cross_entropy import CrossEntropyLabelSmooth
from reidkit.losses.miners import BatchHardMiner, HardTriplets, batch_hard, pairwise_distance
from reidkit.losses.triplet import TripletLoss

__all__ = [
    "LOSSES",
    "AITLCriterion",
    "AITLLoss",
    "AttributeBCELoss",
    "BatchHardMiner",
    "Criterion",
    "CrossEntropyLabelSmooth",
    "HardTriplets",
    "LossOptions",
    "TripletLoss",
    "batch_hard",
    "build_criterion",
    "build_model_criterion",
    "pairwise_distance",
]
